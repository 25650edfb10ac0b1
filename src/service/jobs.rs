//! Long work started from the console (import, export, verify, sync) runs on its own thread;
//! its [`Progress`] and outcome stay readable here while it runs and after it ends.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::Serialize;

use super::ServiceError;
use super::progress::{Progress, Snapshot};

/// Finished jobs kept for their progress pages.
const KEEP: usize = 32;

#[derive(Debug)]
struct Job {
    id: u64,
    title: String,
    started_by: String,
    started_at: i64,
    progress: Progress,
    /// `None` while running; then whether it worked and what it did.
    outcome: Mutex<Option<(bool, String)>>,
}

/// A job at one moment, for a page or JSON.
#[derive(Debug, Clone, Serialize)]
pub struct JobView {
    pub id: u64,
    pub title: String,
    pub started_by: String,
    pub started_at: i64,
    pub running: bool,
    pub ok: Option<bool>,
    pub message: String,
    pub progress: Snapshot,
}

/// The console's jobs. A `std::sync::Mutex`: held only to push or look up, never across work.
#[derive(Debug, Default)]
pub struct Jobs {
    next: AtomicU64,
    jobs: Mutex<VecDeque<Arc<Job>>>,
}

impl Jobs {
    fn list(&self) -> std::sync::MutexGuard<'_, VecDeque<Arc<Job>>> {
        self.jobs.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Runs `work` on a new thread; returns the job's id at once. `work` returns the message
    /// to show when it succeeds, or the error to show when it fails.
    pub fn start(
        &self,
        title: &str,
        started_by: &str,
        work: impl FnOnce(&Progress) -> Result<String, ServiceError> + Send + 'static,
    ) -> Result<u64, ServiceError> {
        let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let job = Arc::new(Job {
            id,
            title: title.to_owned(),
            started_by: started_by.to_owned(),
            started_at: crate::store::now_secs(),
            progress: Progress::new(),
            outcome: Mutex::new(None),
        });
        {
            let mut list = self.list();
            list.push_back(Arc::clone(&job));
            while list.len() > KEEP {
                // Drop the oldest finished job; running ones stay until they end.
                match list.iter().position(|j| j.outcome.lock().is_ok_and(|o| o.is_some())) {
                    Some(i) => drop(list.remove(i)),
                    None => break,
                }
            }
        }
        let worker = Arc::clone(&job);
        std::thread::Builder::new()
            .name(format!("dars-job-{id}"))
            .spawn(move || {
                let result = work(&worker.progress);
                let outcome = match result {
                    Ok(message) => (true, message),
                    Err(e) => {
                        tracing::warn!("{} failed: {e}", worker.title);
                        (false, e.to_string())
                    }
                };
                *worker.outcome.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(outcome);
            })
            .map_err(|e| ServiceError::Internal(format!("cannot start a thread: {e}")))?;
        Ok(id)
    }

    fn view(job: &Job) -> JobView {
        let outcome = job
            .outcome
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        JobView {
            id: job.id,
            title: job.title.clone(),
            started_by: job.started_by.clone(),
            started_at: job.started_at,
            running: outcome.is_none(),
            ok: outcome.as_ref().map(|(ok, _)| *ok),
            message: outcome.map(|(_, m)| m).unwrap_or_default(),
            progress: job.progress.snapshot(),
        }
    }

    /// One job, if it is still kept.
    pub fn get(&self, id: u64) -> Option<JobView> {
        self.list().iter().find(|j| j.id == id).map(|j| Self::view(j))
    }

    /// The kept jobs, newest first.
    pub fn recent(&self) -> Vec<JobView> {
        self.list().iter().rev().map(|j| Self::view(j)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_reports_progress_and_outcome() {
        let jobs = Jobs::default();
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let id = jobs
            .start("work", "amina", move |p| {
                p.set_totals(2, 10);
                p.item_done();
                rx.recv().map_err(|e| ServiceError::Internal(e.to_string()))?;
                Ok("done".into())
            })
            .expect("start");
        let failing = jobs
            .start("fail", "amina", |_| Err(ServiceError::Refused("no".into())))
            .expect("start");
        assert!(jobs.get(id).expect("kept").running);
        tx.send(()).expect("send");
        let finished = |id| loop {
            let view = jobs.get(id).expect("kept");
            if !view.running {
                return view;
            }
            std::thread::yield_now();
        };
        let view = finished(id);
        assert_eq!(
            (view.ok, view.message.as_str(), view.progress.done_items),
            (Some(true), "done", 1)
        );
        assert_eq!(finished(failing).ok, Some(false));
        assert_eq!(jobs.recent().first().map(|j| j.id), Some(failing));
    }
}
