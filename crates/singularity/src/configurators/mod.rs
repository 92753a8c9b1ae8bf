//! Configurators turn a typed request into a [`Plan`](crate::plan::Plan):
//! pure functions of their input and settings, no system access.

pub mod builtin;
pub mod external;
pub mod files;
pub mod password;
