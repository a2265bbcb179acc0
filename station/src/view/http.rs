//! The page, its events, `/api/state` and `/metrics` over HTTP.
