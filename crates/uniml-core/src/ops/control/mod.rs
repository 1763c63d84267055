//! control ops (module files are added by the op family).
