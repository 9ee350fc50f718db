//! playbook: see the architecture map in lib.rs.
