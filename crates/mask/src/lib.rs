//! Masking for the gateway (SPEC §9, issue 17): rewrites secrets and personal data in bodies before
//! they leave the gateway or reach a recording. No I/O; the gateway feeds it chunks.
