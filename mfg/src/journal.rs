//! Journal (coming).
