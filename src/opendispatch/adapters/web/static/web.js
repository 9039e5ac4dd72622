// Open-Dispatch web view: the live part of a job page. No framework, no build step.
// Every line is added as text (textContent), never as HTML: agent output stays inert.
"use strict";

(function () {
  const main = document.getElementById("job");
  if (!main || main.dataset.finished === "true" || !window.EventSource) {
    return;
  }
  const jobId = main.dataset.jobId;
  const output = document.getElementById("output");
  const steps = document.getElementById("steps");
  const noSteps = document.getElementById("no-steps");
  const state = document.getElementById("job-state");
  const count = document.getElementById("line-count");
  const status = document.getElementById("live-status");
  const final = document.getElementById("final");
  let lines = Number(main.dataset.nextLine || "0");
  const MAX_SHOWN = 5000;  // older lines leave the page (the download has them all)

  function nearBottom() {
    return window.innerHeight + window.scrollY >= document.body.scrollHeight - 80;
  }

  function addStep(step) {
    if (step.state !== "running") {
      const running = Array.from(steps.querySelectorAll("li[data-state='running']")).reverse()
        .find((li) => li.textContent === step.label);
      if (running) {
        running.dataset.state = step.state;
        running.className = "step step-" + step.state;
        return;
      }
    }
    const li = document.createElement("li");
    li.className = "step step-" + step.state;
    li.dataset.state = step.state;
    li.textContent = step.label;
    steps.appendChild(li);
    noSteps.hidden = true;
  }

  async function showFinal() {
    try {
      const response = await fetch("/jobs/" + encodeURIComponent(jobId) + "/final", {
        credentials: "same-origin", cache: "no-store",
      });
      if (response.ok) {
        final.innerHTML = await response.text();  // server-rendered and escaped
      }
    } catch (error) {
      status.textContent = "Finished; reload the page for the final card.";
    }
  }

  // Resumes at the last line shown: the server's event ids are line numbers, and
  // EventSource sends the last one it saw when it reconnects.
  const source = new EventSource("/jobs/" + encodeURIComponent(jobId) + "/events?from=" + lines);
  source.addEventListener("lines", (event) => {
    const data = JSON.parse(event.data);
    if (data.from + data.lines.length <= lines) {
      return;  // already shown (a reconnect that overlapped)
    }
    const follow = nearBottom();
    const fresh = data.lines.slice(Math.max(0, lines - data.from));
    const fragment = document.createDocumentFragment();
    for (const text of fresh) {
      const div = document.createElement("div");
      div.className = "line";
      div.textContent = text;
      fragment.appendChild(div);
    }
    output.appendChild(fragment);
    while (output.childElementCount > MAX_SHOWN) {
      output.removeChild(output.firstElementChild);
    }
    lines = data.from + data.lines.length;
    count.textContent = lines.toLocaleString("en") + " lines";
    for (const step of data.steps) {
      addStep(step);
    }
    if (follow) {
      window.scrollTo(0, document.body.scrollHeight);
    }
  });
  source.addEventListener("job", (event) => {
    const data = JSON.parse(event.data);
    state.textContent = data.word;
    state.className = "state state-" + data.state;
  });
  source.addEventListener("final", () => {
    status.textContent = "Finished.";
    main.dataset.finished = "true";
    showFinal();
  });
  source.addEventListener("end", () => {
    source.close();
  });
  source.onerror = () => {
    if (main.dataset.finished !== "true") {
      status.textContent = "Reconnecting…";
    }
  };
  source.onopen = () => {
    if (main.dataset.finished !== "true") {
      status.textContent = "Live: new lines appear as they arrive.";
    }
  };
})();
