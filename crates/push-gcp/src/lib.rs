//! Ferry's Google Cloud Run push backend (being written).
