pub mod audit;
pub mod cloudsim;
pub mod keys;
pub mod run;
pub mod serve;
