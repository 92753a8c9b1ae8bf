//! The metrics thread against the simulator.
