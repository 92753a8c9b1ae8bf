//! The transports of the qga communicator.
