//! rouse-std (skeleton).
