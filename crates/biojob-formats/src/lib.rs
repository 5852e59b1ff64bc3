//! Native format checks (being written).
