/* Model output is untrusted: its Markdown is rendered by marked with raw HTML shown as text, then sanitized by
   DOMPurify (no script, event handler, style, image or form; links only to http(s), mailto and this site). The
   page's Content-Security-Policy would refuse to run an inline script or handler anyway. */
(function () {
  "use strict";
  var ESCAPES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };
  function escapeHtml(text) {
    return String(text).replace(/[&<>"']/g, function (c) { return ESCAPES[c]; });
  }
  window.marked.use({
    gfm: true,
    breaks: true,
    renderer: {
      html: function (token) { return escapeHtml(token.text || token.raw || ""); }
    }
  });
  var purify = window.DOMPurify;
  purify.addHook("afterSanitizeAttributes", function (node) {
    if (node.tagName === "A") {
      node.setAttribute("rel", "noopener noreferrer nofollow");
      node.setAttribute("target", "_blank");
    }
  });
  var OPTIONS = {
    USE_PROFILES: { html: true },
    FORBID_TAGS: ["style", "img", "svg", "math", "form", "input", "button", "textarea", "select", "option",
                  "iframe", "object", "embed", "link", "meta", "base", "video", "audio", "source", "picture"],
    FORBID_ATTR: ["style", "class", "id"],
    ALLOWED_URI_REGEXP: /^(?:https?:|mailto:|#|\/(?!\/))/i
  };

  function render(element, markdown) {
    element.dataset.source = markdown;
    element.innerHTML = purify.sanitize(window.marked.parse(markdown), OPTIONS);
  }

  window.ConsoleMarkdown = { render: render };
  document.querySelectorAll("[data-markdown]").forEach(function (element) {
    render(element, element.textContent.trim());
  });
})();
