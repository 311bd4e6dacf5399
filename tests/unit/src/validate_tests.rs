//! Tests of validate.rs that need a storage.
