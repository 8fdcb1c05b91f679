//! The checklist `keyward doctor` prints: sections of steps, each ok, failed (with cause and
//! fix) or skipped.

use std::fmt::Write as _;

#[derive(Debug)]
pub enum Outcome {
    Ok(String),
    Failed {
        message: String,
        cause: Option<String>,
        fix: Option<String>,
    },
    Skipped(&'static str),
}

#[derive(Debug)]
pub struct Check {
    pub step: String,
    pub outcome: Outcome,
}

#[derive(Debug, Default)]
pub struct Report {
    pub sections: Vec<(String, Vec<Check>)>,
}

impl Report {
    pub fn healthy(&self) -> bool {
        self.sections
            .iter()
            .flat_map(|(_, checks)| checks)
            .all(|c| matches!(c.outcome, Outcome::Ok(_)))
    }

    /// The checklist, one line per step; a failure carries its cause and fix.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for (title, checks) in &self.sections {
            let _ = writeln!(out, "{title}");
            for check in checks {
                match &check.outcome {
                    Outcome::Ok(detail) => {
                        let _ = writeln!(out, "  [ok]   {}: {detail}", check.step);
                    }
                    Outcome::Failed {
                        message,
                        cause,
                        fix,
                    } => {
                        let _ = writeln!(out, "  [FAIL] {}: {message}", check.step);
                        if let Some(cause) = cause {
                            let _ = writeln!(out, "         cause: {cause}");
                        }
                        if let Some(fix) = fix {
                            let _ = writeln!(out, "         fix: {fix}");
                        }
                    }
                    Outcome::Skipped(why) => {
                        let _ = writeln!(out, "  [skip] {}: {why}", check.step);
                    }
                }
            }
        }
        out
    }
}
