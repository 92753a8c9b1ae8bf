//! The request loop of the qga communicator.
