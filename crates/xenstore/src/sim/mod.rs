//! XenStore simulator (to be written).
