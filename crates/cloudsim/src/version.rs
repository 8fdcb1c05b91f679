//! One version of a secret as the simulated clouds keep it while running: every cloud's secret
//! store is a list of these, the current one last.

#[derive(Clone, Debug)]
pub struct Version {
    pub id: String,
    pub value: String,
    pub created: i64,
}
