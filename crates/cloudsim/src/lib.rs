//! The cloud simulator.
