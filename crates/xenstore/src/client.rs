//! XenStore client (to be written).
