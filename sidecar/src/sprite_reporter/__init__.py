"""sprite-reporter: the Open-Dispatch sidecar that runs inside a sprite.

It clones the job's repository, runs the coding agent, streams every line of the agent's
output to the Open-Dispatch webhook server, and reports how the job ended.

Why it is built this way:
- Python standard library only, python3 >= 3.9: it must run in any image that has python3.
- The user's task is always ONE argv element; nothing a user wrote is pasted into a shell string.
- Every output line is appended to a spool file before it is sent, so a long server outage costs
  neither memory nor lines; each batch carries a `seq` the server dedupes, so retries are safe.
- The final status is sent only after every log batch was acknowledged (or given up on).
- Output goes over one long-lived `POST /webhooks/stream` (a chunked NDJSON body, one record per
  batch) when the server offers it: a record costs the server a fraction of a request. The answer
  at the end of each stream, or `GET /webhooks/stream` after a drop, names the last stored seq;
  records after it are resent unchanged. A server without it (404) gets POSTs, as before.
- Secrets (JOB_TOKEN, GH_TOKEN, ...) never appear in argv, in our output or in relayed lines;
  the agent does not even receive JOB_TOKEN.
- The job's repository token (GitHub App mode) reaches git through a credential helper that
  asks the sidecar: never a URL, an argv, the sidecar's environment or git's configuration.

Environment
  required  JOB_ID, JOB_TOKEN, OPEN_DISPATCH_URL (base URL), and either AGENT (claude|opencode|shell)
            with TASK, or the legacy COMMAND (split with shlex, never run through a shell)
  optional  REPO (owner/repo, a git URL or a local path), BRANCH (main), GH_TOKEN,
            OPENDISPATCH_WORKSPACE (.), OPENDISPATCH_ARTIFACTS_FILE (<workspace>/.opendispatch-artifacts),
            OPENDISPATCH_BATCH_MS (100), OPENDISPATCH_BATCH_BYTES (65536), OPENDISPATCH_GIVE_UP_S (900),
            OPENDISPATCH_RETRY_MAX_S (5), OPENDISPATCH_HTTP_TIMEOUT_S (10),
            OPENDISPATCH_STREAM (1: send output over one long-lived request when the server offers it),
            OPENDISPATCH_GIT_CREDENTIALS, OPENDISPATCH_CREDENTIAL_RENEW_S (300), see below,
            MAX_COST_USD (Claude Code's --max-budget-usd), AGENT_MODEL (see below),
            OPENDISPATCH_APPROVALS, OPENDISPATCH_APPROVAL_TIMEOUT_S (600), see below
Repository credentials (OPENDISPATCH_GIT_CREDENTIALS=<git server URL>, e.g. https://github.com)
  The dispatcher mints the job's tokens. REPO=owner/name means <server URL>/owner/name.git; that
  server's https/http URLs are cloned with a token from `POST /webhooks/credentials` ({"jobId"},
  the job token as bearer; 200 {"username", "password", "expiresAt"}, 401, 404, 409, or 502 with
  an "error" the job fails with at the clone stage). A broker thread holds the token and renews it
  when it expires within OPENDISPATCH_CREDENTIAL_RENEW_S seconds; git asks it through a helper
  program in <workspace>/.od-git (its socket in .od-git/broker, the agent user's, 0700), named in
  `credential.<server>.helper` for the clone and then in the clone's config, so the agent's git
  fetch/push use it too. It asks with the running job's id and token (a persistent session: the
  message being run; between messages it answers nothing). The agent gets GH_TOKEN (and GH_ENTERPRISE_TOKEN for a server other than
  github.com) for `gh`: the token current when it starts, a snapshot; git keeps renewing, gh does
  not (past the token's hour, GitHub refuses it). Every fetched token is redacted from output.
  This wins over GH_TOKEN for that server; without the variable GH_TOKEN works as before.
Model (AGENT_MODEL, from `/od-run --model X` or the channel's default; unset: the agent's default)
  ASCII letters, digits and ._:/@- only, at most 100 characters, never starting with '-' (the
  dispatcher checks it; the sidecar checks again: anything else is a configuration error naming
  AGENT_MODEL, exit 2). It goes to the agent as two argv elements, never through a shell:
  claude `--model X`, opencode `-m X` (OpenCode wants provider/model; the value goes as given),
  for a one-shot job and for every message of a session, new or resumed. The shell agent (and
  COMMAND) gets no flag: AGENT_MODEL is in its environment, unchanged.
Approvals (OPENDISPATCH_APPROVALS, the channel's policy; unset, empty or `off`: as before)
  `ask-all`, or `ask RULE...` with a rule a tool name and an optional shell-style pattern on the
  call's main argument: `ask Bash(git push*) WebFetch Write(/etc/*)` (approval_policy.py; the
  dispatcher's own rule, re-implemented; a policy the sidecar cannot read is a configuration
  error naming the variable). Claude Code keeps --dangerously-skip-permissions and gets a
  PreToolUse hook (`--settings`, with `--setting-sources user`: the repository's .claude
  settings and CLAUDE.md are not read); a call the policy names waits while the sidecar's
  approval broker asks `POST /webhooks/approval {"jobId", "tool", "input"}` and long-polls
  `GET /webhooks/approval?jobId&requestId&waitS=25` (the job token as bearer) for "approve" or
  "deny" (its message is what the model is told); errors and 5xx are retried; 401, 404, 409 deny;
  no decision within OPENDISPATCH_APPROVAL_TIMEOUT_S + 60 s denies. Other calls run at once.
  OpenCode cannot ask: the calls the policy names are denied (OPENCODE_PERMISSION, with
  OPENCODE_DISABLE_PROJECT_CONFIG=1: the repository's opencode.json, .opencode/ and AGENTS.md
  are not read), said in one line of the job's output. The shell agent: nothing changes.
Sessions (OPENDISPATCH_SESSION_MODE)
  handover    one sprite per message (a normal job) of a non-persistent session: before the agent runs,
              GET /webhooks/session/state restores the agent's saved conversation; after it, the new
              state is POSTed back. AGENT_SESSION_ID names the conversation (claude --session-id/--resume).
  persistent  one sprite for the whole session: no JOB_ID; SESSION_ID and SESSION_TOKEN instead. The
              sidecar long-polls GET /webhooks/session/next for each message (jobId, jobToken, task),
              runs it as a job (clone once, then the same workspace), continues the same agent
              conversation, and asks again; 410 means the session ended (exit 0).
Exit code: the agent's; 2 for a configuration error, git's for a failed clone (128 when the
dispatcher gave no credentials for it), 127 when the agent is not installed, 143 when cancelled
before the agent ran.
"""


PROG = "sprite-reporter"
