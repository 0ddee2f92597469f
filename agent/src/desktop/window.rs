//! The windows end users see: "Get help" (`lifeline-agent help`) and the consent prompt
//! (`lifeline-agent consent`).
//!
//! Both are immediate-mode egui apps; everything slow (diagnostics, filing, fetching "My
//! tickets") runs on threads and reports over channels, so the window opens at once and needs no
//! network to open. Keyboard: in the help window Enter sends (Shift+Enter starts a new line) and
//! Esc cancels; in the consent window Deny has the focus, Esc denies, Tab moves to Allow.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use eframe::egui;
use lifeline_shared::v1::api::{DESCRIPTION_MAX_LEN, MachineTicket, Urgency};
use lifeline_shared::v1::feedback::FeedbackRecorded;

use super::consent::{ConsentAnswer, ConsentPrompt};
use super::gui;
use super::help::{self, Collecting, HelpError};
use super::screenshot::{self, Screenshot};
use crate::config::AgentDir;
use crate::tickets::clean;

/// The help window's title (tests and scripts find the window by it).
pub const HELP_TITLE: &str = "Lifeline - Get help";
/// The consent window's title.
pub const CONSENT_TITLE: &str = "Lifeline - Allow a remote action?";
/// How often the window looks at its background threads while waiting for them.
const POLL: Duration = Duration::from_millis(100);

/// How long Send waits for a screenshot still being taken before sending without it.
const SCREENSHOT_WAIT: Duration = Duration::from_secs(10);

/// The optional screenshot, when the user turned it on.
enum Shot {
    /// Off (the default): nothing is taken or sent.
    Off,
    /// Being taken on a thread.
    Taking(mpsc::Receiver<Result<Screenshot, String>>),
    /// Taken; it is sent. The thumbnail texture is made on the first frame that shows it.
    Ready {
        shot: Screenshot,
        texture: Option<egui::TextureHandle>,
    },
    /// Could not be taken: the report goes without it.
    Failed(String),
}

impl Shot {
    /// Starts taking a screenshot of the screen.
    fn take() -> Shot {
        let (tx, rx) = mpsc::channel();
        let spawned = std::thread::Builder::new()
            .name("screenshot".to_owned())
            .spawn(move || {
                let _ = tx.send(screenshot::capture());
            });
        match spawned {
            Ok(_) => Shot::Taking(rx),
            Err(e) => Shot::Failed(format!("The screenshot could not be taken: {e}.")),
        }
    }

    /// Looks whether a screenshot being taken is done.
    fn poll(&mut self) {
        if let Shot::Taking(rx) = self {
            match rx.try_recv() {
                Ok(Ok(shot)) => {
                    *self = Shot::Ready {
                        shot,
                        texture: None,
                    }
                }
                Ok(Err(e)) => *self = Shot::Failed(e),
                Err(mpsc::TryRecvError::Disconnected) => {
                    *self = Shot::Failed("The screenshot could not be taken.".to_owned())
                }
                Err(mpsc::TryRecvError::Empty) => {}
            }
        }
    }

    /// "1600x900 PNG, 312 KB" once taken.
    fn describe(&self) -> Option<String> {
        match self {
            Shot::Ready { shot, .. } => Some(shot.describe()),
            _ => None,
        }
    }
}

/// One resolved ticket's "Did this fix it?" in "My tickets".
#[derive(Default)]
struct FeedbackForm {
    comment: String,
    /// The answer being sent.
    sending: Option<mpsc::Receiver<Result<FeedbackRecorded, String>>>,
    /// Sent (what the collector recorded), or why it was not.
    result: Option<Result<FeedbackRecorded, String>>,
    /// The comment box's id once drawn (Enter there is not "send the report").
    comment_id: Option<egui::Id>,
}

impl FeedbackForm {
    /// Sends the answer on a thread.
    fn send(&mut self, dir: &AgentDir, number: u64, fixed: bool) {
        let (tx, rx) = mpsc::channel();
        let dir = dir.clone();
        let comment = self.comment.clone();
        let spawned = std::thread::Builder::new()
            .name("feedback".to_owned())
            .spawn(move || {
                let comment = (!comment.trim().is_empty()).then_some(comment.as_str());
                let result =
                    crate::tickets::send_feedback(&dir, number, fixed, comment).map_err(|e| {
                        format!("Your answer was not sent ({e}). Please try again later.")
                    });
                let _ = tx.send(result);
            });
        match spawned {
            Ok(_) => {
                self.sending = Some(rx);
                self.result = None;
            }
            Err(e) => self.result = Some(Err(format!("Your answer was not sent ({e})."))),
        }
    }

    /// Looks whether the answer went through; returns what was recorded, once.
    fn poll(&mut self) -> Option<FeedbackRecorded> {
        let rx = self.sending.as_ref()?;
        match rx.try_recv() {
            Ok(result) => {
                let recorded = result.as_ref().ok().cloned();
                self.result = Some(result);
                self.sending = None;
                recorded
            }
            Err(mpsc::TryRecvError::Disconnected) => {
                self.result = Some(Err("Your answer was not sent.".to_owned()));
                self.sending = None;
                None
            }
            Err(mpsc::TryRecvError::Empty) => None,
        }
    }
}

/// Where the help window is.
enum Stage {
    /// The user is writing.
    Form,
    /// Send was pressed; the report is being filed.
    Sending {
        answer: mpsc::Receiver<Result<String, String>>,
    },
    /// Filed (or refused); the text says how.
    Done { text: String, ok: bool },
}

struct HelpApp {
    dir: AgentDir,
    description: String,
    urgency: Urgency,
    collecting: Option<Collecting>,
    /// The "Attach a screenshot" checkbox (off by default) and its screenshot.
    screenshot_on: bool,
    shot: Shot,
    show_json: bool,
    stage: Stage,
    error: Option<String>,
    tickets: Option<Result<Vec<MachineTicket>, String>>,
    tickets_answer: mpsc::Receiver<Result<Vec<MachineTicket>, String>>,
    /// The filing thread: joined when the window closes, so closing never cuts a send short.
    sender: Option<JoinHandle<()>>,
    first_frame: bool,
    /// "Did this fix it?" per resolved ticket, and whether "My tickets" was opened for it.
    feedback: std::collections::BTreeMap<u64, FeedbackForm>,
    tickets_opened: bool,
}

/// Runs the help window until it is closed.
pub fn run(dir: AgentDir) -> Result<(), HelpError> {
    // Diagnostics first: they are collected while the window opens and the user types.
    let collecting = Collecting::start(&dir);
    let (tickets_tx, tickets_answer) = mpsc::channel();
    let tickets_dir = dir.clone();
    let _ = std::thread::Builder::new()
        .name("my-tickets".to_owned())
        .spawn(move || {
            let _ = tickets_tx.send(crate::tickets::fetch(&tickets_dir).map_err(|e| e.to_string()));
        });
    let app = HelpApp {
        dir,
        description: String::new(),
        urgency: Urgency::Normal,
        collecting: Some(collecting),
        screenshot_on: false,
        shot: Shot::Off,
        show_json: false,
        stage: Stage::Form,
        error: None,
        tickets: None,
        tickets_answer,
        sender: None,
        first_frame: true,
        feedback: std::collections::BTreeMap::new(),
        tickets_opened: false,
    };
    gui::run_window(HELP_TITLE, [680.0, 700.0], app).map_err(HelpError::Window)
}

impl HelpApp {
    fn send(&mut self) {
        let draft = match self.collecting.as_mut().and_then(Collecting::ready) {
            Some(snapshot) => help::draft(&self.description, self.urgency, snapshot),
            None => help::draft(
                &self.description,
                self.urgency,
                &lifeline_shared::v1::snapshot::Snapshot::empty(
                    time::OffsetDateTime::UNIX_EPOCH,
                    "",
                ),
            ),
        };
        if let Err(e) = draft.check() {
            self.error = Some(e.to_string());
            return;
        }
        let Some(collecting) = self.collecting.take() else {
            return;
        };
        let (tx, answer) = mpsc::channel();
        let dir = self.dir.clone();
        let (description, urgency) = (self.description.clone(), self.urgency);
        // The screenshot goes only when it is on and was taken (or is taken within a few
        // seconds); a failed one is left out.
        let shot = std::mem::replace(&mut self.shot, Shot::Off);
        // Waits for the snapshot if it is not there yet (it usually is), then files.
        let spawned = std::thread::Builder::new()
            .name("send".to_owned())
            .spawn(move || {
                let png = match shot {
                    Shot::Ready { shot, .. } => Some(shot.png),
                    Shot::Taking(rx) => rx
                        .recv_timeout(SCREENSHOT_WAIT)
                        .ok()
                        .and_then(Result::ok)
                        .map(|s| s.png),
                    Shot::Off | Shot::Failed(_) => None,
                };
                let snapshot = collecting.wait();
                let draft = help::draft(&description, urgency, &snapshot);
                let result = help::send(&dir, draft, snapshot, png)
                    .map(|filed| help::outcome(&filed))
                    .map_err(|e| e.to_string());
                let _ = tx.send(result);
            });
        match spawned {
            Ok(handle) => {
                self.sender = Some(handle);
                self.stage = Stage::Sending { answer };
            }
            Err(e) => self.error = Some(format!("cannot send: {e}")),
        }
    }

    fn form(&mut self, ui: &mut egui::Ui) {
        ui.heading("Get help from the IT help desk");
        ui.label("What's wrong?");
        let edit = ui.add(
            egui::TextEdit::multiline(&mut self.description)
                .hint_text("Describe the problem in a sentence or two")
                .desired_rows(3)
                .desired_width(f32::INFINITY)
                .return_key(egui::KeyboardShortcut::new(
                    egui::Modifiers::SHIFT,
                    egui::Key::Enter,
                )),
        );
        if self.first_frame {
            edit.request_focus();
            self.first_frame = false;
        }
        if edit.changed() {
            self.error = None;
        }
        ui.horizontal(|ui| {
            ui.label("How urgent is it?");
            ui.radio_value(&mut self.urgency, Urgency::Low, "Low");
            ui.radio_value(&mut self.urgency, Urgency::Normal, "Normal");
            ui.radio_value(&mut self.urgency, Urgency::High, "High");
        });
        self.screenshot(ui);

        let snapshot_ready = self
            .collecting
            .as_mut()
            .and_then(Collecting::ready)
            .cloned();
        egui::CollapsingHeader::new("What will be sent")
            .default_open(true)
            .show(ui, |ui| match &snapshot_ready {
                None => {
                    ui.horizontal(|ui| {
                        ui.spinner();
                        ui.label("Collecting diagnostics of this computer...");
                    });
                }
                Some(snapshot) => {
                    let draft = help::draft(&self.description, self.urgency, snapshot);
                    ui.label(
                        egui::RichText::new(
                            "Your description and this diagnostics snapshot, exactly as the help \
                             desk will get them (passwords and tokens are already masked):",
                        )
                        .small(),
                    );
                    let shot = self.shot.describe();
                    let text = if self.show_json {
                        help::document(&draft, snapshot, shot.as_deref())
                    } else {
                        help::preview(&draft, snapshot, shot.as_deref())
                    };
                    egui::ScrollArea::vertical()
                        .id_salt("preview")
                        .max_height(200.0)
                        .auto_shrink([false, true])
                        .show(ui, |ui| {
                            ui.add(egui::Label::new(egui::RichText::new(text).monospace()));
                        });
                    ui.checkbox(&mut self.show_json, "Show the exact document (JSON)");
                }
            });

        self.my_tickets(ui);
    }

    /// Send, Cancel and what is wrong with the form: always in view, below the form.
    fn actions(&mut self, ui: &mut egui::Ui, enter: bool) {
        let too_long = self.description.len() > DESCRIPTION_MAX_LEN;
        if too_long {
            self.error = Some(format!(
                "The description is {} bytes; the limit is {DESCRIPTION_MAX_LEN}.",
                self.description.len()
            ));
        }
        if let Some(error) = &self.error {
            ui.colored_label(ui.visuals().error_fg_color, error);
        }
        let can_send = !self.description.trim().is_empty() && !too_long;
        ui.horizontal(|ui| {
            let send = ui.add_enabled(can_send, egui::Button::new("Send"));
            let cancel = ui.button("Cancel");
            ui.label(
                egui::RichText::new("Enter sends, Shift+Enter starts a new line, Esc cancels")
                    .small()
                    .weak(),
            );
            if cancel.clicked() {
                ui.ctx().send_viewport_cmd(egui::ViewportCommand::Close);
            } else if (send.clicked() || enter) && can_send {
                self.send();
            } else if enter {
                self.error = Some("Please say what is wrong first.".to_owned());
            }
        });
    }

    /// The "Attach a screenshot" checkbox and, when on, the thumbnail or why there is none.
    fn screenshot(&mut self, ui: &mut egui::Ui) {
        let toggled = ui
            .checkbox(
                &mut self.screenshot_on,
                "Attach a screenshot of my screen (Space turns it on or off)",
            )
            .changed();
        if toggled {
            self.shot = if self.screenshot_on {
                Shot::take()
            } else {
                Shot::Off
            };
        }
        self.shot.poll();
        match &mut self.shot {
            Shot::Off => {}
            Shot::Taking(_) => {
                ui.horizontal(|ui| {
                    ui.spinner();
                    ui.label("Taking the screenshot...");
                });
            }
            Shot::Ready { shot, texture } => {
                let texture = texture.get_or_insert_with(|| {
                    let thumb = &shot.thumbnail;
                    ui.ctx().load_texture(
                        "screenshot",
                        egui::ColorImage::from_rgb(
                            [thumb.width as usize, thumb.height as usize],
                            &thumb.pixels,
                        ),
                        egui::TextureOptions::LINEAR,
                    )
                });
                ui.horizontal(|ui| {
                    ui.add(
                        egui::Image::new(&*texture).max_width(screenshot::THUMBNAIL_WIDTH as f32),
                    );
                    ui.label(format!("This screenshot is sent ({}).", shot.describe()));
                });
            }
            Shot::Failed(why) => {
                ui.colored_label(
                    ui.visuals().error_fg_color,
                    format!("{why} The report can still be sent without it."),
                );
            }
        }
    }

    fn my_tickets(&mut self, ui: &mut egui::Ui) {
        if self.tickets.is_none() {
            self.tickets = self.tickets_answer.try_recv().ok();
        }
        let title = match &self.tickets {
            Some(Ok(list)) => format!("My tickets ({})", list.len()),
            _ => "My tickets".to_owned(),
        };
        // An answer that went through updates the list (no longer asked; reopened on a no).
        for (number, form) in &mut self.feedback {
            if let Some(recorded) = form.poll()
                && let Some(Ok(list)) = &mut self.tickets
                && let Some(ticket) = list.iter_mut().find(|t| t.number == *number)
            {
                ticket.status = recorded.status;
                ticket.feedback_wanted = false;
            }
        }
        // Resolved tickets ask "Did this fix it?" (and keep the thanks once answered here): the
        // section opens by itself for them.
        let feedback = &self.feedback;
        let wanted: Vec<(u64, String)> = match &self.tickets {
            Some(Ok(list)) => list
                .iter()
                .filter(|t| {
                    t.feedback_wanted
                        || feedback
                            .get(&t.number)
                            .is_some_and(|f| matches!(f.result, Some(Ok(_))))
                })
                .map(|t| {
                    let text = clean(&t.description);
                    let first = text.lines().next().unwrap_or("").to_owned();
                    (t.number, crate::redact::bound(first, 60))
                })
                .collect(),
            _ => Vec::new(),
        };
        let open = (!wanted.is_empty() && !self.tickets_opened).then_some(true);
        if open.is_some() {
            self.tickets_opened = true;
        }
        let (dir, feedback, tickets) = (&self.dir, &mut self.feedback, &self.tickets);
        egui::CollapsingHeader::new(title)
            .default_open(false)
            .open(open)
            .show(ui, |ui| {
                for (number, description) in &wanted {
                    let form = feedback.entry(*number).or_default();
                    Self::feedback_question(ui, dir, *number, description, form);
                }
                match tickets {
                    None => {
                        ui.horizontal(|ui| {
                            ui.spinner();
                            ui.label("Asking the help desk...");
                        });
                    }
                    Some(Err(e)) => {
                        ui.label(format!("Cannot reach the help desk right now ({e})."));
                    }
                    Some(Ok(list)) => {
                        egui::ScrollArea::vertical()
                            .id_salt("tickets")
                            .max_height(160.0)
                            .auto_shrink([false, true])
                            .show(ui, |ui| {
                                ui.label(crate::tickets::render_list(list));
                            });
                    }
                }
            });
    }

    /// "Did this fix it?" for one resolved ticket: a comment box, Yes and No.
    fn feedback_question(
        ui: &mut egui::Ui,
        dir: &AgentDir,
        number: u64,
        description: &str,
        form: &mut FeedbackForm,
    ) {
        ui.group(|ui| {
            ui.label(
                egui::RichText::new(format!(
                    "Ticket #{number} ({description}) was resolved. Did this fix it?"
                ))
                .strong(),
            );
            if let Some(Ok(recorded)) = &form.result {
                ui.label(crate::tickets::thanks(recorded));
                return;
            }
            let comment = ui.add(
                egui::TextEdit::singleline(&mut form.comment)
                    .id_salt(("feedback-comment", number))
                    .hint_text("Anything to add? (optional)")
                    .char_limit(lifeline_shared::v1::feedback::FEEDBACK_COMMENT_MAX_LEN)
                    .desired_width(f32::INFINITY),
            );
            form.comment_id = Some(comment.id);
            if form.sending.is_some() {
                ui.horizontal(|ui| {
                    ui.spinner();
                    ui.label("Sending your answer...");
                });
                return;
            }
            ui.horizontal(|ui| {
                if ui.button("Yes, it is fixed").clicked() {
                    form.send(dir, number, true);
                }
                if ui.button("No, it is not fixed").clicked() {
                    form.send(dir, number, false);
                }
            });
            if let Some(Err(error)) = &form.result {
                ui.colored_label(ui.visuals().error_fg_color, error);
            }
        });
    }

    fn sending(&mut self, ui: &mut egui::Ui) {
        let Stage::Sending { answer } = &self.stage else {
            return;
        };
        match answer.try_recv() {
            Ok(Ok(text)) => self.stage = Stage::Done { text, ok: true },
            Ok(Err(text)) => self.stage = Stage::Done { text, ok: false },
            Err(mpsc::TryRecvError::Disconnected) => {
                self.stage = Stage::Done {
                    text: "Sending stopped unexpectedly; run `lifeline-agent spool list`."
                        .to_owned(),
                    ok: false,
                }
            }
            Err(mpsc::TryRecvError::Empty) => {
                ui.heading("Get help from the IT help desk");
                ui.horizontal(|ui| {
                    ui.spinner();
                    ui.label("Sending your report...");
                });
            }
        }
    }

    fn done(ui: &mut egui::Ui, text: &str, ok: bool) {
        let close = ui.input_mut(|i| {
            i.consume_key(egui::Modifiers::NONE, egui::Key::Enter)
                || i.consume_key(egui::Modifiers::NONE, egui::Key::Escape)
        });
        ui.heading(if ok {
            "Thank you: help is on the way"
        } else {
            "Your report could not be sent"
        });
        let label = egui::RichText::new(text).size(18.0);
        if ok {
            ui.label(label.strong());
            ui.label("The help desk will get back to you. You can close this window now.");
        } else {
            ui.colored_label(ui.visuals().error_fg_color, label);
            ui.label("Nothing is lost: the report stays on this computer until it is delivered.");
        }
        if ui.button("Close").clicked() || close {
            ui.ctx().send_viewport_cmd(egui::ViewportCommand::Close);
        }
    }
}

impl eframe::App for HelpApp {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        if matches!(self.stage, Stage::Form) {
            // Enter in a "Did this fix it?" comment box is not "send the report".
            let typing_feedback = ui.memory(|m| m.focused()).is_some_and(|focused| {
                self.feedback
                    .values()
                    .any(|f| f.comment_id == Some(focused))
            });
            let enter = !typing_feedback
                && ui.input_mut(|i| i.consume_key(egui::Modifiers::NONE, egui::Key::Enter));
            if ui.input_mut(|i| i.consume_key(egui::Modifiers::NONE, egui::Key::Escape)) {
                ui.ctx().send_viewport_cmd(egui::ViewportCommand::Close);
                return;
            }
            egui::Panel::bottom("actions").show(ui, |ui| {
                ui.add_space(6.0);
                self.actions(ui, enter);
            });
        }
        egui::CentralPanel::default().show(ui, |ui| match &self.stage {
            Stage::Form => self.form(ui),
            Stage::Sending { .. } => self.sending(ui),
            Stage::Done { text, ok } => {
                let (text, ok) = (text.clone(), *ok);
                Self::done(ui, &text, ok);
            }
        });
        let waiting = self.tickets.is_none()
            || self.feedback.values().any(|f| f.sending.is_some())
            || matches!(self.stage, Stage::Sending { .. })
            || matches!(self.shot, Shot::Taking(_))
            || self
                .collecting
                .as_mut()
                .is_some_and(|c| c.ready().is_none());
        if waiting {
            ui.ctx().request_repaint_after(POLL);
        }
    }
}

impl Drop for HelpApp {
    fn drop(&mut self) {
        // The report is spooled first thing in the filing thread; let it finish so the window
        // closing never interrupts a send.
        if let Some(sender) = self.sender.take() {
            let _ = sender.join();
        }
    }
}

struct ConsentApp {
    prompt: ConsentPrompt,
    deadline: Instant,
    answer: Arc<Mutex<Option<ConsentAnswer>>>,
    first_frame: bool,
}

impl eframe::App for ConsentApp {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        let ctx = ui.ctx().clone();
        let answer = Arc::clone(&self.answer);
        let finish = move |given: ConsentAnswer| {
            if let Ok(mut slot) = answer.lock() {
                slot.get_or_insert(given);
            }
            ctx.send_viewport_cmd(egui::ViewportCommand::Close);
        };
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            finish(ConsentAnswer::TimedOut);
            return;
        }
        if ui.input_mut(|i| i.consume_key(egui::Modifiers::NONE, egui::Key::Escape)) {
            finish(ConsentAnswer::Denied);
            return;
        }
        if ui.input(|i| i.viewport().close_requested()) {
            finish(ConsentAnswer::Denied);
        }
        let p = &self.prompt;
        egui::CentralPanel::default().show(ui, |ui| {
            ui.heading("A technician asks to run an action on this computer");
            ui.label(format!(
                "{} from the IT help desk wants to run:",
                clean(&p.technician)
            ));
            ui.label(
                egui::RichText::new(clean(&p.action_title))
                    .size(19.0)
                    .strong(),
            );
            ui.label(clean(&p.action_description));
            if !p.params.is_empty() {
                egui::Grid::new("params").striped(true).show(ui, |ui| {
                    for (name, value) in &p.params {
                        ui.label(clean(name));
                        ui.monospace(clean(value));
                        ui.end_row();
                    }
                });
            }
            if let Some(reason) = &p.reason {
                ui.label(format!("Reason: {}", clean(reason)));
            }
            if let Some(ticket) = p.ticket {
                ui.label(format!("For ticket #{ticket}"));
            }
            ui.separator();
            ui.label(
                egui::RichText::new(format!(
                    "If you do not answer, this is denied in {} s.",
                    left.as_secs() + 1
                ))
                .weak(),
            );
            ui.horizontal(|ui| {
                let deny = ui.button("Deny");
                let allow = ui.button("Allow");
                if self.first_frame {
                    deny.request_focus();
                    self.first_frame = false;
                }
                if deny.clicked() {
                    finish(ConsentAnswer::Denied);
                } else if allow.clicked() {
                    finish(ConsentAnswer::Allowed);
                }
            });
        });
        ui.ctx().request_repaint_after(Duration::from_millis(250));
    }
}

/// Shows the consent window until the user answers or `timeout` passes.
pub fn consent(prompt: &ConsentPrompt, timeout: Duration) -> Result<ConsentAnswer, String> {
    let answer = Arc::new(Mutex::new(None));
    let app = ConsentApp {
        prompt: prompt.clone(),
        deadline: Instant::now() + timeout,
        answer: Arc::clone(&answer),
        first_frame: true,
    };
    gui::run_window(CONSENT_TITLE, [560.0, 380.0], app)?;
    let answer = answer.lock().map_err(|e| e.to_string())?.take();
    // Closed some other way (the window manager): a denial.
    Ok(answer.unwrap_or(ConsentAnswer::Denied))
}
