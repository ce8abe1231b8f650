//! A chat session, free of any window or terminal: the history, which backend
//! answers, the conversation's settings, the request it sends, the answer as
//! it streams, its statistics, and (when given a database) persistence.
//!
//! The Chat screen and `duet chat` both drive one; so will documents and tools.
//! The front end resolves the backend (it knows the loaded model and the
//! profiles) and hands it in as a [`Contender`]; everything after that is here.

use super::agent::{Agent, AgentEvent, Step};
use super::answer::{AnswerStats, Contender};
use super::tools::gate::{Approval, Confirm, Gate, Proposal};
use super::tools::Toolbox;
use crate::db::{Db, DbError, NewMessage};
use crate::engine::{BackendSpec, Cancel, DataLocation, Event, GenError, GenRequest, Message, Role, SamplingParams};
use crate::progress::Wake;
use serde::{Deserialize, Serialize};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Instant;

/// Per-conversation settings (kept in the conversation's row).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ConvSettings {
    pub system_prompt: String,
    pub temperature: f32,
    pub top_p: f32,
    pub max_tokens: usize,
    pub seed: u64,
    /// The model may use tools (the calculator at once; actions after a yes).
    pub tools: bool,
}

impl ConvSettings {
    pub fn from_app(s: &crate::config::AppSettings) -> Self {
        ConvSettings {
            system_prompt: s.system_prompt.clone(),
            temperature: s.temperature,
            top_p: s.top_p,
            max_tokens: s.max_tokens,
            seed: s.seed,
            tools: false,
        }
    }
}

impl Default for ConvSettings {
    fn default() -> Self {
        Self::from_app(&crate::config::AppSettings::default())
    }
}

/// One message of the history.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatMsg {
    pub seq: i64,
    pub role: Role,
    pub content: String,
    /// Which model answered (empty for the person's messages).
    pub backend_label: String,
    pub location: DataLocation,
    pub metrics: Option<AnswerStats>,
}

#[derive(Debug, thiserror::Error)]
pub enum ChatError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Gen(#[from] GenError),
}

/// What [`ChatSession::poll`] saw arrive.
#[derive(Debug)]
pub enum ChatUpdate {
    /// More of the answer.
    Delta(String),
    /// The answer is in the history (the last message); the oldest
    /// `dropped_messages` turns did not fit the context and were left out.
    Answered { dropped_messages: usize, notice: Option<String> },
    /// Stopped before any text: nothing was added.
    StoppedEmpty,
    /// No answer; the question stays in the history (Regenerate asks again).
    Failed(ChatError),
}

/// The answer on its way.
struct Answering {
    rx: mpsc::Receiver<Event>,
    cancel: Cancel,
    text: String,
    backend_label: String,
    location: DataLocation,
    prices: Option<(f64, f64)>,
    started: Instant,
    first_token_ms: Option<f64>,
}

#[derive(Default)]
pub struct ChatSession {
    /// The conversation's row, once saved (a session without a database never has one).
    pub conversation: Option<i64>,
    pub title: String,
    pub backend: BackendSpec,
    pub conv: ConvSettings,
    /// The sampling knobs a conversation does not keep (the terminal's --top-k,
    /// --min-p…); temperature, top-p and seed come from `conv`.
    pub sampling: SamplingParams,
    /// None: 1.1 for the local model (small models repeat themselves), 1.0 for the cloud.
    pub repeat_penalty: Option<f32>,
    pub stop: Vec<String>,
    pub messages: Vec<ChatMsg>,
    /// Called as each piece of an answer arrives (the window redraws then).
    pub wake: Wake,
    /// What stops the next answer, when the front end has its own flag (the
    /// terminal's Ctrl-C); otherwise each answer gets a new one.
    next_cancel: Option<Cancel>,
    answering: Option<Answering>,
    /// The tools offered when `conv.tools` is on (the front end sets them).
    pub toolbox: Option<Arc<Toolbox>>,
    /// This chat's "always allow" answers.
    gate: Arc<Mutex<Gate>>,
    /// Steps of the answer on its way, as the agent reports them.
    live_steps: Arc<Mutex<Vec<Step>>>,
    /// An action waiting for the person's answer, and where the answer goes.
    asking: Option<(Proposal, mpsc::SyncSender<Approval>)>,
    asks: Option<mpsc::Receiver<(Proposal, mpsc::SyncSender<Approval>)>>,
}

/// Hands the agent's questions to the session (and the window); no answer,
/// because the session stopped or went away, is a no.
struct AskThroughChannel {
    tx: mpsc::SyncSender<(Proposal, mpsc::SyncSender<Approval>)>,
    wake: Wake,
}

impl Confirm for AskThroughChannel {
    fn ask(&self, proposal: &Proposal) -> Approval {
        let (reply_tx, reply_rx) = mpsc::sync_channel(1);
        if self.tx.send((proposal.clone(), reply_tx)).is_err() {
            return Approval::Deny;
        }
        self.wake.wake();
        reply_rx.recv().unwrap_or(Approval::Deny)
    }
}

impl ChatSession {
    pub fn new(backend: BackendSpec, conv: ConvSettings) -> Self {
        ChatSession { backend, conv, ..ChatSession::default() }
    }

    /// A saved conversation with its history.
    pub fn open(db: &Db, id: i64) -> Result<Self, DbError> {
        let c = db.conversation(id)?;
        let messages = db
            .messages(id)?
            .into_iter()
            .map(|m| ChatMsg {
                seq: m.seq,
                role: m.role,
                content: m.content,
                backend_label: m.backend_label,
                location: DataLocation::parse(&m.location),
                metrics: serde_json::from_str(&m.metrics_json)
                    .ok()
                    .filter(|m: &AnswerStats| m.completion_tokens > 0 || m.total_ms > 0.0),
            })
            .collect();
        Ok(ChatSession {
            conversation: Some(id),
            title: c.title,
            backend: c.backend,
            conv: serde_json::from_str(&c.settings_json).unwrap_or_default(),
            messages,
            ..ChatSession::default()
        })
    }

    pub fn is_answering(&self) -> bool {
        self.answering.is_some()
    }

    /// Text of the answer being streamed now.
    pub fn answer_text(&self) -> Option<&str> {
        self.answering.as_ref().map(|a| a.text.as_str())
    }

    /// Where the answer being streamed now goes.
    pub fn answer_location(&self) -> Option<&DataLocation> {
        self.answering.as_ref().map(|a| &a.location)
    }

    /// Ask the answer in progress to stop (what it wrote so far is kept); an
    /// action waiting for a yes gets a no.
    pub fn stop(&mut self) {
        if let Some(a) = &self.answering {
            a.cancel.cancel();
        }
        self.answer_action(Approval::Deny);
    }

    /// The action waiting for the person's yes, if any.
    pub fn pending_action(&self) -> Option<&Proposal> {
        self.asking.as_ref().map(|(p, _)| p)
    }

    /// Answer the action waiting for a yes (closing the question is `Deny`).
    pub fn answer_action(&mut self, approval: Approval) {
        if self.asking.is_none() {
            // Asked but not yet polled (Stop came first): it is the one this answers.
            self.asking = self.asks.as_ref().and_then(|rx| rx.try_recv().ok());
        }
        if let Some((_, reply)) = self.asking.take() {
            let _ = reply.send(approval);
        }
    }

    /// The steps of the answer on its way (with tools on).
    pub fn live_steps(&self) -> Vec<Step> {
        self.live_steps.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Stop and forget the answer in progress (the session is being left:
    /// its answer must not land anywhere).
    pub fn abandon(&mut self) {
        self.stop();
        self.answering = None;
    }

    /// Forget the history (the terminal's /reset); settings stay.
    pub fn clear(&mut self) {
        self.abandon();
        self.messages.clear();
    }

    pub fn set_backend(&mut self, db: Option<&Db>, spec: BackendSpec) -> Result<(), DbError> {
        self.backend = spec;
        match (db, self.conversation) {
            (Some(db), Some(id)) => db.set_conversation_backend(id, &self.backend),
            _ => Ok(()),
        }
    }

    /// Keep changed settings with the conversation.
    pub fn save_settings(&self, db: &Db) -> Result<(), DbError> {
        match self.conversation {
            Some(id) => db.set_conversation_settings(id, &serde_json::to_string(&self.conv).unwrap_or_default()),
            None => Ok(()),
        }
    }

    /// Add the person's message (replacing the one at `replace_from` and
    /// everything after it, when editing) and start the answer. Nothing is
    /// added when saving fails.
    pub fn send(
        &mut self,
        db: Option<&mut Db>,
        answerer: Contender,
        text: &str,
        replace_from: Option<i64>,
    ) -> Result<(), ChatError> {
        if let Some(db) = db {
            let id = self.ensure_conversation(db, text)?;
            let question = [NewMessage::user(text)];
            match replace_from {
                Some(seq) => db.replace_messages_from(id, seq, &question)?,
                None => db.append_messages(id, &question)?,
            }
        }
        if let Some(seq) = replace_from {
            self.messages.retain(|m| m.seq < seq);
        }
        self.push(Role::User, text.to_string(), String::new(), DataLocation::ThisComputer, None);
        self.start(answerer);
        Ok(())
    }

    /// Ask again for the last answer (dropping it), or answer a question that
    /// failed. False when there is nothing to answer.
    pub fn regenerate(&mut self, db: Option<&mut Db>, answerer: Contender) -> Result<bool, ChatError> {
        if self.answering.is_some() {
            return Ok(false);
        }
        if let Some(last) = self.messages.last().filter(|m| m.role == Role::Assistant) {
            if let (Some(db), Some(id)) = (db, self.conversation) {
                db.truncate_messages(id, last.seq)?;
            }
            self.messages.pop();
        }
        if self.messages.last().is_some_and(|m| m.role == Role::User) {
            self.start(answerer);
            return Ok(true);
        }
        Ok(false)
    }

    /// Drop a trailing question that got no answer (the terminal forgets it).
    pub fn forget_unanswered(&mut self) {
        if self.answering.is_none() && self.messages.last().is_some_and(|m| m.role == Role::User) {
            self.messages.pop();
        }
    }

    /// The request the backend gets: system prompt, then the history.
    pub fn request(&self) -> GenRequest {
        let mut messages: Vec<Message> = Vec::new();
        if !self.conv.system_prompt.trim().is_empty() {
            messages.push(Message::system(&self.conv.system_prompt));
        }
        messages.extend(self.messages.iter().map(|m| Message::new(m.role, &m.content)));
        let mut req = GenRequest::new(messages);
        req.sampling = SamplingParams {
            temperature: self.conv.temperature,
            top_p: self.conv.top_p,
            seed: self.conv.seed,
            repeat_penalty: self.repeat_penalty.unwrap_or(if self.backend.is_local() { 1.1 } else { 1.0 }),
            ..self.sampling.clone()
        };
        req.max_tokens = self.conv.max_tokens.max(1);
        req.stop = self.stop.clone();
        req.truncate_history = true;
        req
    }

    fn ensure_conversation(&mut self, db: &Db, first_text: &str) -> Result<i64, DbError> {
        if let Some(id) = self.conversation {
            return Ok(id);
        }
        let title: String = first_text.lines().next().unwrap_or("").chars().take(48).collect();
        let settings = serde_json::to_string(&self.conv).unwrap_or_default();
        let id = db.create_conversation(&title, &self.backend, &settings)?;
        self.conversation = Some(id);
        self.title = title;
        Ok(id)
    }

    /// Let `cancel` stop the next answer (as [`stop`](Self::stop) does).
    pub fn cancel_next_with(&mut self, cancel: Cancel) {
        self.next_cancel = Some(cancel);
    }

    fn start(&mut self, answerer: Contender) {
        let cancel = self.next_cancel.take().unwrap_or_default();
        let (backend_label, location) = (answerer.backend.label(), answerer.backend.data_location());
        let rx = match self.toolbox.clone().filter(|_| self.conv.tools) {
            Some(toolbox) => self.start_agent(answerer.backend, toolbox, cancel.clone()),
            None => answerer.backend.generate(self.request(), cancel.clone()),
        };
        let rx = self.wake.forward(rx);
        self.answering = Some(Answering {
            rx,
            cancel,
            text: String::new(),
            backend_label,
            location,
            prices: answerer.prices,
            started: Instant::now(),
            first_token_ms: None,
        });
    }

    /// Run the agent loop on a worker thread; its text and its end arrive as
    /// a backend's would, its steps in `live_steps`, its questions on `asks`.
    fn start_agent(
        &mut self,
        backend: Box<dyn crate::engine::Backend>,
        toolbox: Arc<Toolbox>,
        cancel: Cancel,
    ) -> mpsc::Receiver<Event> {
        let (tx, rx) = mpsc::sync_channel(256);
        let (ask_tx, ask_rx) = mpsc::sync_channel(1);
        self.asks = Some(ask_rx);
        self.live_steps = Arc::default();
        let (steps, gate, wake, req) = (self.live_steps.clone(), self.gate.clone(), self.wake.clone(), self.request());
        std::thread::spawn(move || {
            let confirm = AskThroughChannel { tx: ask_tx, wake: wake.clone() };
            let agent = Agent::new(backend.as_ref(), &toolbox, &confirm);
            let mut gate = gate.lock().unwrap_or_else(|e| e.into_inner());
            let run = agent.run(&mut gate, req, &cancel, &mut |e| match e {
                AgentEvent::Delta(t) => {
                    let _ = tx.send(Event::Delta(t));
                }
                AgentEvent::Step(step) => {
                    steps.lock().unwrap_or_else(|e| e.into_inner()).push(step);
                    wake.wake();
                }
            });
            let _ = tx.send(match run {
                Ok(run) => Event::Done(run.answer),
                Err(e) => Event::Error(e),
            });
        });
        rx
    }

    fn push(
        &mut self,
        role: Role,
        content: String,
        backend_label: String,
        location: DataLocation,
        metrics: Option<AnswerStats>,
    ) {
        let seq = self.messages.last().map(|m| m.seq + 1).unwrap_or(0);
        self.messages.push(ChatMsg { seq, role, content, backend_label, location, metrics });
    }

    /// Take in whatever arrived, without waiting; the finished answer is saved.
    pub fn poll(&mut self, mut db: Option<&mut Db>) -> Vec<ChatUpdate> {
        if self.asking.is_none() {
            self.asking = self.asks.as_ref().and_then(|rx| rx.try_recv().ok());
        }
        let mut updates = Vec::new();
        while let Some(a) = &self.answering {
            let event = match a.rx.try_recv() {
                Ok(e) => e,
                Err(mpsc::TryRecvError::Empty) => break,
                Err(mpsc::TryRecvError::Disconnected) => Event::Error(GenError::NoAnswer),
            };
            let done = !matches!(event, Event::Delta(_));
            updates.push(self.apply(event, db.as_deref_mut()));
            if done {
                break;
            }
        }
        updates
    }

    /// Wait for the answer to finish, handing each piece of text to `on_delta`.
    pub fn wait(&mut self, mut db: Option<&mut Db>, on_delta: &mut dyn FnMut(&str)) -> Option<ChatUpdate> {
        loop {
            let a = self.answering.as_ref()?;
            let event = a.rx.recv().unwrap_or(Event::Error(GenError::NoAnswer));
            match self.apply(event, db.as_deref_mut()) {
                ChatUpdate::Delta(t) => on_delta(&t),
                finished => return Some(finished),
            }
        }
    }

    /// [`wait`](Self::wait) with tools on: each new step goes to `on_step` as
    /// it happens, and an action waiting for a yes is put to `confirm`.
    pub fn wait_with_tools(
        &mut self,
        mut db: Option<&mut Db>,
        on_delta: &mut dyn FnMut(&str),
        on_step: &mut dyn FnMut(&Step),
        confirm: &dyn Confirm,
    ) -> Option<ChatUpdate> {
        let mut shown = 0;
        loop {
            let steps = self.live_steps();
            for step in steps.iter().skip(shown) {
                on_step(step);
            }
            shown = steps.len();
            if let Some((proposal, reply)) = self.asks.as_ref().and_then(|rx| rx.try_recv().ok()) {
                let _ = reply.send(confirm.ask(&proposal));
            }
            let a = self.answering.as_ref()?;
            let event = match a.rx.recv_timeout(std::time::Duration::from_millis(20)) {
                Ok(e) => e,
                Err(mpsc::RecvTimeoutError::Timeout) => continue,
                Err(mpsc::RecvTimeoutError::Disconnected) => Event::Error(GenError::NoAnswer),
            };
            if !matches!(event, Event::Delta(_)) {
                // Steps that came with the end (a cut-off) are shown before it.
                for step in self.live_steps().iter().skip(shown) {
                    on_step(step);
                }
            }
            match self.apply(event, db.as_deref_mut()) {
                ChatUpdate::Delta(t) => on_delta(&t),
                finished => return Some(finished),
            }
        }
    }

    fn apply(&mut self, event: Event, db: Option<&mut Db>) -> ChatUpdate {
        let Some(a) = &mut self.answering else { return ChatUpdate::Failed(GenError::NoAnswer.into()) };
        let c = match event {
            Event::Delta(t) => {
                if a.first_token_ms.is_none() {
                    a.first_token_ms = Some(a.started.elapsed().as_secs_f64() * 1e3);
                }
                a.text.push_str(&t);
                return ChatUpdate::Delta(t);
            }
            Event::Error(e) => {
                self.answering = None;
                return ChatUpdate::Failed(e.into());
            }
            Event::Done(c) => c,
        };
        let Some(a) = self.answering.take() else { return ChatUpdate::Failed(GenError::NoAnswer.into()) };
        // The backend's own first-token time when it measured one (no network in it).
        let ttft = if c.timings.ttft_ms > 0.0 { c.timings.ttft_ms } else { a.first_token_ms.unwrap_or(0.0) };
        let total_ms = a.started.elapsed().as_secs_f64() * 1e3;
        let mut stats = AnswerStats::measure(&c, a.location.clone(), ttft, total_ms, a.prices);
        stats.steps = std::mem::take(&mut *self.live_steps.lock().unwrap_or_else(|e| e.into_inner()))
            .iter()
            .map(Step::to_string)
            .collect();
        self.asks = None;
        let text = if c.text.is_empty() { a.text } else { c.text.clone() };
        if text.is_empty() && stats.stopped {
            return ChatUpdate::StoppedEmpty;
        }
        let saved = match (db, self.conversation) {
            (Some(db), Some(id)) => {
                let msg = NewMessage {
                    role: Role::Assistant,
                    content: text.clone(),
                    backend_label: a.backend_label.clone(),
                    location: a.location.to_string(),
                    metrics_json: serde_json::to_string(&stats).unwrap_or_default(),
                };
                db.append_messages(id, &[msg])
            }
            _ => Ok(()),
        };
        self.push(Role::Assistant, text, a.backend_label, a.location, Some(stats));
        match saved {
            Ok(()) => ChatUpdate::Answered { dropped_messages: c.dropped_messages, notice: c.notice.clone() },
            Err(e) => ChatUpdate::Failed(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Backend, Completion, FinishReason, Timings, Usage};
    use std::sync::{Arc, Mutex};

    /// A backend that answers from a script and remembers what it was asked.
    #[derive(Clone, Default)]
    struct Scripted {
        reply: Vec<Event>,
        asked: Arc<Mutex<Vec<GenRequest>>>,
    }

    impl Backend for Scripted {
        fn label(&self) -> String {
            "scripted".into()
        }
        fn data_location(&self) -> DataLocation {
            DataLocation::SentTo("example.test".into())
        }
        fn generate(&self, req: GenRequest, _cancel: Cancel) -> mpsc::Receiver<Event> {
            self.asked.lock().unwrap().push(req);
            let (tx, rx) = mpsc::channel();
            for e in &self.reply {
                tx.send(e.clone()).unwrap();
            }
            rx
        }
    }

    fn done(text: &str, finish: FinishReason) -> Event {
        Event::Done(Completion {
            text: text.into(),
            finish_reason: finish,
            usage: Usage { prompt_tokens: 12, completion_tokens: 3, cached_tokens: 0 },
            timings: Timings::default(),
            dropped_messages: 0,
            notice: None,
            first_token_logprobs: Vec::new(),
            tool_calls: Vec::new(),
            broken_calls: Vec::new(),
        })
    }

    fn answering(b: &Scripted) -> Contender {
        Contender { spec: BackendSpec::cloud("lab"), backend: Box::new(b.clone()), prices: Some((1e6, 1e6)) }
    }

    #[test]
    fn a_question_and_its_answer_are_kept_with_statistics() {
        let mut db = Db::in_memory().unwrap();
        let b = Scripted {
            reply: vec![Event::Delta("Par".into()), Event::Delta("is.".into()), done("Paris.", FinishReason::Stop)],
            ..Default::default()
        };
        let mut s = ChatSession::new(BackendSpec::cloud("lab"), ConvSettings::default());
        s.conv.system_prompt = "Answer briefly.".into();
        s.send(Some(&mut db), answering(&b), "Capital of France?", None).unwrap();
        let mut seen = String::new();
        let end = s.wait(Some(&mut db), &mut |t| seen.push_str(t));
        assert!(matches!(end, Some(ChatUpdate::Answered { dropped_messages: 0, .. })), "{end:?}");
        assert_eq!(seen, "Paris.");
        let req = b.asked.lock().unwrap()[0].clone();
        assert_eq!(req.messages, vec![Message::system("Answer briefly."), Message::user("Capital of France?")]);
        assert_eq!(req.sampling.repeat_penalty, 1.0, "no repeat penalty for a cloud model");
        let stats = s.messages[1].metrics.clone().expect("statistics");
        assert_eq!((stats.completion_tokens, stats.cost_usd), (3, Some(15.0)));
        // The database holds the same conversation.
        let id = s.conversation.expect("saved");
        let again = ChatSession::open(&db, id).unwrap();
        let texts = |m: &[ChatMsg]| m.iter().map(|m| (m.role, m.content.clone())).collect::<Vec<_>>();
        assert_eq!(texts(&again.messages), texts(&s.messages));
        assert_eq!(again.messages[1].metrics.as_ref().map(|m| m.completion_tokens), Some(3));
        assert_eq!((again.title.as_str(), again.backend), ("Capital of France?", BackendSpec::cloud("lab")));
        assert_eq!(again.messages[1].location, DataLocation::SentTo("example.test".into()));
    }

    #[test]
    fn a_failed_answer_keeps_the_question_and_regenerate_asks_again() {
        let mut db = Db::in_memory().unwrap();
        let broken = Scripted { reply: vec![Event::Error(GenError::NoAnswer)], ..Default::default() };
        let mut s = ChatSession::new(BackendSpec::Local, ConvSettings::default());
        s.send(Some(&mut db), answering(&broken), "Hello?", None).unwrap();
        let updates = s.poll(Some(&mut db));
        assert!(matches!(updates.last(), Some(ChatUpdate::Failed(_))), "{updates:?}");
        assert_eq!(s.messages.len(), 1, "the question stays");
        let good = Scripted { reply: vec![done("Hi!", FinishReason::Stop)], ..Default::default() };
        assert!(s.regenerate(Some(&mut db), answering(&good)).unwrap());
        s.wait(Some(&mut db), &mut |_| {});
        assert_eq!(s.messages.last().map(|m| m.content.as_str()), Some("Hi!"));
        assert_eq!(good.asked.lock().unwrap()[0].sampling.repeat_penalty, 1.1, "local models get a repeat penalty");
        // Regenerate replaces the answer, in memory and on disk.
        let other = Scripted { reply: vec![done("Hello there.", FinishReason::Stop)], ..Default::default() };
        assert!(s.regenerate(Some(&mut db), answering(&other)).unwrap());
        s.wait(Some(&mut db), &mut |_| {});
        let stored = db.messages(s.conversation.unwrap()).unwrap();
        assert_eq!(stored.iter().map(|m| m.content.as_str()).collect::<Vec<_>>(), vec!["Hello?", "Hello there."]);
    }

    #[test]
    fn editing_replaces_from_there_and_an_empty_stop_adds_nothing() {
        let mut db = Db::in_memory().unwrap();
        let ok = Scripted { reply: vec![done("A.", FinishReason::Stop)], ..Default::default() };
        let mut s = ChatSession::new(BackendSpec::Local, ConvSettings::default());
        s.send(Some(&mut db), answering(&ok), "first", None).unwrap();
        s.wait(Some(&mut db), &mut |_| {});
        let stopped = Scripted { reply: vec![done("", FinishReason::Cancelled)], ..Default::default() };
        s.send(Some(&mut db), answering(&stopped), "second, edited", Some(0)).unwrap();
        assert!(matches!(s.wait(Some(&mut db), &mut |_| {}), Some(ChatUpdate::StoppedEmpty)));
        assert_eq!(s.messages.iter().map(|m| m.content.as_str()).collect::<Vec<_>>(), vec!["second, edited"]);
        assert_eq!(db.messages(s.conversation.unwrap()).unwrap().len(), 1);
        s.forget_unanswered();
        assert!(s.messages.is_empty());
    }

    #[test]
    fn without_a_database_nothing_is_saved_and_the_terminal_flags_apply() {
        let ok = Scripted { reply: vec![done("Yes.", FinishReason::Stop)], ..Default::default() };
        let mut s = ChatSession::new(BackendSpec::Local, ConvSettings::default());
        s.sampling.top_k = 7;
        s.repeat_penalty = Some(1.3);
        s.stop = vec!["END".into()];
        s.send(None, answering(&ok), "ok?", None).unwrap();
        s.wait(None, &mut |_| {});
        assert_eq!((s.conversation, s.messages.len()), (None, 2));
        let req = ok.asked.lock().unwrap()[0].clone();
        assert_eq!((req.sampling.top_k, req.sampling.repeat_penalty, req.stop), (7, 1.3, vec!["END".to_string()]));
        assert!(req.truncate_history, "long chats drop their oldest turns");
    }
}
