//! Test support owned by the Service Bus tests: the loopback fake and the Azure-mode wiring.
#![allow(dead_code)]

pub mod azure_mode;
pub mod fake_service_bus;
