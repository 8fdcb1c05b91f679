pub mod audit;
pub mod cloudsim;
pub mod keys;
pub mod serve;
