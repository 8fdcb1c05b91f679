//! Keyward's clients for the clouds' federation and secret endpoints.
