//! Session recordings for the gateway (SPEC §9, issue 17): what a session did, as compressed JSON
//! lines chained by hashes so an edit, a deleted line or a truncation is detected.
