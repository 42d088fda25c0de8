//! The seed's `WorkflowRequest`, as it arrives on `chat.workflow.execute.{session_id}`, and the
//! pods to answer (header `Chat-Reply-Pods`).

use serde::Deserialize;
use switchyard_sdk::prelude::*;

/// Header listing the backend pods that hold the session's connections, comma separated. The
/// pod that publishes the request knows it holds one; absent or empty, the workflow falls back to
/// the session broadcast.
pub const REPLY_PODS: &str = "Chat-Reply-Pods";

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkflowRequest {
    pub message_id: String,
    pub session_id: String,
    pub user_id: String,
    pub message: String,
    pub context: RequestContext,
    pub timestamp: Timestamp,
    pub correlation_id: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestContext {
    pub ai_provider: String,
    pub model: String,
    pub temperature: f64,
    pub max_tokens: u32,
    #[serde(default)]
    pub system_prompt: Option<String>,
    #[serde(default)]
    pub conversation_history: Vec<String>,
}

impl Validate for WorkflowRequest {
    fn validate(&self, v: &mut Validator) {
        // Ids end up in subjects (the session broadcast) and in every chunk.
        v.subject_token("message_id", &self.message_id).subject_token("session_id", &self.session_id);
        v.required("user_id", &self.user_id).required("correlation_id", &self.correlation_id);
        v.required("message", &self.message).max_chars("message", &self.message, 10_000);
        v.nested("context", &self.context);
    }
}

impl Validate for RequestContext {
    fn validate(&self, v: &mut Validator) {
        v.one_of("ai_provider", &self.ai_provider, &["openai", "anthropic", "custom"]);
        v.required("model", &self.model).range("temperature", self.temperature, 0.0, 2.0).range("max_tokens", self.max_tokens, 1, 32_000);
    }
}

/// Read and check a request: its schema, and that it arrived on its own session's subject.
pub(crate) fn read(msg: &Message) -> Result<WorkflowRequest, Stop> {
    let request: WorkflowRequest = validated_json(&msg.payload)?;
    let token = msg.subject.rsplit('.').next().unwrap_or_default();
    if token != request.session_id {
        return Err(Stop::reject(format!(
            "subject `{}` is for session `{token}` but the request is for `{}`",
            msg.subject, request.session_id
        )));
    }
    Ok(request)
}

/// The pods named by the `Chat-Reply-Pods` header: trimmed, empties dropped, duplicates removed,
/// each checked to be a subject token.
pub(crate) fn reply_pods(msg: &Message) -> Result<Vec<String>, ValidationError> {
    let mut pods: Vec<String> = Vec::new();
    for pod in msg.headers_all(REPLY_PODS).flat_map(|value| value.split(',')).map(str::trim).filter(|p| !p.is_empty()) {
        if !pods.iter().any(|known| known == pod) {
            pods.push(pod.to_owned());
        }
    }
    let mut v = Validator::new();
    for pod in &pods {
        v.subject_token(REPLY_PODS, pod);
    }
    v.finish().map(|()| pods)
}
