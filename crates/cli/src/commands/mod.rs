pub mod audit;
pub mod cloudsim;
pub mod doctor;
pub mod keys;
pub mod run;
pub mod serve;
