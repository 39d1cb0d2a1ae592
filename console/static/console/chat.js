/* The chat page: sends a message (or regenerates, or edits the last one) to the console's endpoints and shows the
   reply as its Server-Sent Events arrive, rendered by ConsoleMarkdown. Signed in by the cookie; every request
   carries Django's CSRF token. */
(function () {
  "use strict";
  var list = document.getElementById("messages");
  var form = document.getElementById("composer");
  var input = document.getElementById("message");
  var model = document.getElementById("model");
  var send = document.getElementById("send");
  var regenerate = document.getElementById("regenerate");
  var editLast = document.getElementById("edit-last");
  var statusLine = document.getElementById("chat-status");
  var csrf = document.querySelector('meta[name="csrf-token"]').content;
  var sessionId = list.dataset.session || null;
  var editing = false;
  var busy = false;

  function say(text) { statusLine.textContent = text; }

  function setBusy(value) {
    busy = value;
    list.setAttribute("aria-busy", value ? "true" : "false");
    [send, regenerate, editLast].forEach(function (b) { b.disabled = value; });
  }

  function addMessage(role, text) {
    var item = document.createElement("li");
    item.className = "message " + role;
    var label = document.createElement("span");
    label.className = "role";
    label.textContent = role === "user" ? "You" : "Assistant";
    var content = document.createElement("div");
    content.className = "content";
    item.append(label, content);
    list.append(item);
    window.ConsoleMarkdown.render(content, text);
    return content;
  }

  function lastOf(role) {
    var items = list.querySelectorAll("li.message." + role);
    return items.length ? items[items.length - 1] : null;
  }

  function dropLastExchange(keepUser) {
    var user = lastOf("user");
    if (!user) { return; }
    var node = keepUser ? user.nextElementSibling : user;
    while (node) { var next = node.nextElementSibling; node.remove(); node = next; }
  }

  function showSession(id, firstWords) {
    var url = list.dataset.sessionUrl + encodeURIComponent(id);
    if (sessionId === id) { return; }
    sessionId = id;
    window.history.replaceState(null, "", url);
    document.getElementById("chat-heading").textContent = firstWords.slice(0, 60) || id;
    var sessions = document.getElementById("sessions");
    if (sessions && sessions.tagName !== "UL") {
      var fresh = document.createElement("ul");
      fresh.className = "sessions";
      fresh.id = "sessions";
      sessions.replaceWith(fresh);
      sessions = fresh;
    }
    var item = document.createElement("li");
    var link = document.createElement("a");
    link.href = url;
    link.dataset.session = id;
    link.setAttribute("aria-current", "page");
    var words = document.createElement("span");
    words.className = "first-words";
    words.textContent = firstWords.replace(/\s+/g, " ").slice(0, 80) || id;
    link.append(words);
    item.append(link);
    sessions.prepend(item);
  }

  // One Server-Sent Events stream: `delta` pieces, then `done` (the whole reply) or `error`. `firstWords` names
  // a new session in the sidebar.
  async function stream(url, body, reply, firstWords) {
    setBusy(true);
    say("The assistant is writing…");
    var text = "";
    try {
      var response = await fetch(url, {
        method: "POST",
        credentials: "same-origin",
        // Errors before the stream starts come as JSON with their status; a reply streams as text/event-stream.
        headers: { "Content-Type": "application/json", "Accept": "application/json", "X-CSRFToken": csrf },
        body: JSON.stringify(body)
      });
      if (!response.ok) {
        var problem = await response.json().catch(function () { return {}; });
        if (response.status === 401) {  // signed out (or revoked) meanwhile: sign in again, then come back
          window.location.assign(list.dataset.signInUrl + "?next=" + encodeURIComponent(window.location.pathname));
          return false;
        }
        throw new Error(problem.detail || "The request failed (" + response.status + ").");
      }
      var reader = response.body.getReader();
      var decoder = new TextDecoder();
      var buffer = "";
      var pending = false;
      var finished = false;
      while (!finished) {
        var chunk = await reader.read();
        if (chunk.done) { break; }
        buffer += decoder.decode(chunk.value, { stream: true });
        var events = buffer.split("\n\n");
        buffer = events.pop();
        for (var i = 0; i < events.length; i++) {
          var name = "message", data = "";
          events[i].split("\n").forEach(function (line) {
            if (line.startsWith("event: ")) { name = line.slice(7); }
            else if (line.startsWith("data: ")) { data += line.slice(6); }
          });
          if (!data) { continue; }
          var payload = JSON.parse(data);
          if (name === "delta") {
            text += payload.content;
            if (!pending) {
              pending = true;
              window.requestAnimationFrame(function () { pending = false; window.ConsoleMarkdown.render(reply, text); });
            }
          } else if (name === "done") {
            text = payload.response;
            window.ConsoleMarkdown.render(reply, text);
            showSession(payload.session_id, firstWords);
            finished = true;
          } else if (name === "error") {
            throw new Error(payload.detail || "The reply failed.");
          }
        }
      }
      window.ConsoleMarkdown.render(reply, text);
      say("Reply complete.");
      regenerate.hidden = false;
      editLast.hidden = false;
      return true;
    } catch (exc) {
      reply.closest("li").classList.add("failed");
      window.ConsoleMarkdown.render(reply, text);
      var note = document.createElement("p");
      note.className = "error-note";
      note.textContent = exc.message;
      reply.append(note);
      say("Error: " + exc.message);
      return false;
    } finally {
      setBusy(false);
    }
  }

  function options() { return { model: model.value }; }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var text = input.value.trim();
    if (!text || busy) { return; }
    input.value = "";
    if (editing && sessionId) {
      editing = false;
      send.textContent = "Send";
      dropLastExchange(false);
      addMessage("user", text);
      stream(apiUrl("edit"), Object.assign({ message: text }, options()), addMessage("assistant", ""), text);
      return;
    }
    addMessage("user", text);
    var body = Object.assign({ message: text, stream: true }, options());
    if (sessionId) { body.session_id = sessionId; }
    stream(list.dataset.chatUrl, body, addMessage("assistant", ""), text);
  });

  function apiUrl(action) {
    return list.dataset.chatUrl + "/" + encodeURIComponent(sessionId) + "/" + action;
  }

  input.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      form.requestSubmit();
    } else if (event.key === "Escape" && editing) {
      editing = false;
      input.value = "";
      send.textContent = "Send";
      say("Edit cancelled.");
    }
  });

  regenerate.addEventListener("click", function () {
    if (!sessionId || busy) { return; }
    dropLastExchange(true);
    stream(apiUrl("regenerate"), options(), addMessage("assistant", ""), "");
  });

  editLast.addEventListener("click", function () {
    var user = lastOf("user");
    if (!sessionId || !user || busy) { return; }
    editing = true;
    input.value = user.querySelector(".content").dataset.source || "";
    send.textContent = "Send edit";
    say("Editing your last message: send replaces it and its reply; Escape cancels.");
    input.focus();
  });
})();
