/* Raiox AI panel: X-ray viewer (zoom, pan, contrast, brightness, invert, the implants' boxes, marking an implant)
   and small HTMX helpers. */
(function () {
  "use strict";

  function setupViewer(root) {
    var stage = root.querySelector(".stage");
    var img = stage.querySelector("img");
    var out = root.querySelector(".zoom-level");
    var state = { scale: 1, x: 0, y: 0, contrast: 100, brightness: 100, invert: false };
    function broken() {  // a file that cannot be shown (not an image, gone from storage): say so, drop the tools
      var note = document.createElement("p");
      note.className = "muted broken-image";
      note.textContent = root.dataset.broken || "";
      stage.replaceChildren(note);
      root.querySelectorAll(".toolbar").forEach(function (bar) { bar.style.display = "none"; });
    }
    img.addEventListener("error", broken);
    if (img.complete && img.naturalWidth === 0 && img.getAttribute("src")) { broken(); }

    var marks = stage.querySelector("svg.marks");
    // the implants' boxes lie over the picture: the same box on the page, moved and scaled with it
    function place() {
      if (!marks) { return; }
      marks.style.left = img.offsetLeft + "px";
      marks.style.top = img.offsetTop + "px";
      marks.style.width = img.offsetWidth + "px";
      marks.style.height = img.offsetHeight + "px";
      marks.style.transform = img.style.transform;
    }
    img.addEventListener("load", place);
    window.addEventListener("resize", place);

    function clamp() {  // a zoomed picture moves only as far as its edges: it never leaves its frame
      var spanX = (state.scale - 1) * img.offsetWidth / 2, spanY = (state.scale - 1) * img.offsetHeight / 2;
      state.x = Math.max(-spanX, Math.min(spanX, state.x));
      state.y = Math.max(-spanY, Math.min(spanY, state.y));
    }
    function apply() {
      clamp();
      stage.classList.toggle("zoomed", state.scale > 1);  // zoomed: a drag or a swipe moves the picture
      img.style.transform = "translate(" + state.x + "px," + state.y + "px) scale(" + state.scale + ")";
      place();
      img.style.filter = "contrast(" + state.contrast + "%) brightness(" + state.brightness + "%)" +
        (state.invert ? " invert(1)" : "");
      if (out) { out.textContent = Math.round(state.scale * 100) + "%"; }
      root.dataset.scale = state.scale.toFixed(2);
    }
    function zoom(factor) {
      state.scale = Math.min(10, Math.max(1, state.scale * factor));
      if (state.scale === 1) { state.x = 0; state.y = 0; }
      apply();
    }
    root.querySelectorAll("[data-zoom]").forEach(function (button) {
      button.addEventListener("click", function () {
        var kind = button.dataset.zoom;
        if (kind === "in") { zoom(1.25); } else if (kind === "out") { zoom(0.8); }
        else {  // "Restaurar": the picture as it came, zoom and filters alike
          state.scale = 1; state.x = 0; state.y = 0;
          state.contrast = 100; state.brightness = 100; state.invert = false;
          root.querySelectorAll("[data-filter]").forEach(function (input) {
            if (input.dataset.filter === "invert") { input.checked = false; } else { input.value = 100; }
          });
          apply();
        }
      });
    });
    root.querySelectorAll("[data-filter]").forEach(function (input) {
      input.addEventListener("input", function () {
        var name = input.dataset.filter;
        state[name] = name === "invert" ? input.checked : Number(input.value);
        apply();
      });
    });
    // the wheel zooms with Ctrl (a trackpad's pinch) or once the picture is zoomed; otherwise the page scrolls
    stage.addEventListener("wheel", function (event) {
      if (!(event.ctrlKey || event.metaKey || state.scale > 1)) { return; }
      event.preventDefault();
      zoom(event.deltaY < 0 ? 1.15 : 0.87);
    }, { passive: false });
    root.querySelectorAll("[data-marks]").forEach(function (input) {
      input.addEventListener("change", function () { if (marks) { marks.classList.toggle("off", !input.checked); } });
    });
    // "Marcar implante": a drag on the picture draws the implant's rectangle (in the film's pixels) into the form
    var drawButton = root.querySelector("[data-draw]");
    var form = drawButton && document.getElementById(drawButton.getAttribute("aria-controls"));
    var rect = marks && marks.querySelector("rect.drawn");
    var drawing = false, start = null;
    var MIN_MARK = 8;  // film pixels: the server refuses smaller rectangles (raiox.review.marks.MIN_MARK)
    function setDrawing(on) {
      if (!on && start) {  // cancelled mid-drag: nothing is kept
        start = null;
        if (rect) { rect.setAttribute("visibility", "hidden"); }
      }
      drawing = on;
      root.classList.toggle("drawing", on);
      if (drawButton) { drawButton.setAttribute("aria-pressed", on ? "true" : "false"); }
      if (on && form) { form.open = true; }
    }
    function toFilm(event) {  // a point of the page in the film's pixels (the picture may be zoomed and moved)
      var box = img.getBoundingClientRect();
      var width = Number(marks.dataset.width), height = Number(marks.dataset.height);
      return {
        x: Math.round(Math.min(width, Math.max(0, (event.clientX - box.left) / box.width * width))),
        y: Math.round(Math.min(height, Math.max(0, (event.clientY - box.top) / box.height * height)))
      };
    }
    function coords() {
      var out = {};
      if (form) { form.querySelectorAll("[data-coord]").forEach(function (input) { out[input.dataset.coord] = input; }); }
      return out;
    }
    function showRect(a, b) {
      if (!rect) { return; }
      rect.setAttribute("x", Math.min(a.x, b.x));
      rect.setAttribute("y", Math.min(a.y, b.y));
      rect.setAttribute("width", Math.abs(b.x - a.x));
      rect.setAttribute("height", Math.abs(b.y - a.y));
      rect.setAttribute("visibility", "visible");
    }
    if (drawButton && marks) {
      drawButton.addEventListener("click", function () { setDrawing(!drawing); });
      root.addEventListener("keydown", function (event) {  // from the button, the film or anywhere in the viewer
        if (event.key === "Escape" && drawing) { setDrawing(false); event.preventDefault(); }
      });
      Object.values(coords()).forEach(function (input) {  // typed corners show as the same rectangle
        input.addEventListener("input", function () {
          var c = coords();
          if (c.x0.value && c.y0.value && c.x1.value && c.y1.value) {
            showRect({ x: Number(c.x0.value), y: Number(c.y0.value) }, { x: Number(c.x1.value), y: Number(c.y1.value) });
          }
        });
      });
    }
    var drag = null;
    stage.addEventListener("pointerdown", function (event) {
      stage.setPointerCapture(event.pointerId);
      if (drawing) { start = toFilm(event); showRect(start, start); return; }
      if (state.scale <= 1) { return; }  // nothing to move: a swipe scrolls the page
      drag = { x: event.clientX - state.x, y: event.clientY - state.y };
      stage.classList.add("dragging");
    });
    stage.addEventListener("pointermove", function (event) {
      if (start) { showRect(start, toFilm(event)); return; }
      if (!drag) { return; }
      state.x = event.clientX - drag.x;
      state.y = event.clientY - drag.y;
      apply();
    });
    stage.addEventListener("pointerup", function (event) {
      if (!start) { return; }
      var end = toFilm(event), c = coords();
      if (Math.abs(end.x - start.x) < MIN_MARK || Math.abs(end.y - start.y) < MIN_MARK) {
        start = null;  // a click or a slip, not a rectangle: keep drawing
        if (rect) { rect.setAttribute("visibility", "hidden"); }
        return;
      }
      c.x0.value = Math.min(start.x, end.x); c.y0.value = Math.min(start.y, end.y);
      c.x1.value = Math.max(start.x, end.x); c.y1.value = Math.max(start.y, end.y);
      start = null;
      setDrawing(false);
      var submit = form.querySelector("button[type=submit]");
      if (submit) { submit.focus(); }
    });
    ["pointerup", "pointercancel"].forEach(function (name) {
      stage.addEventListener(name, function () { drag = null; start = null; stage.classList.remove("dragging"); });
    });
    stage.addEventListener("keydown", function (event) {
      var step = 40, handled = true;
      switch (event.key) {
        case "+": case "=": zoom(1.25); break;
        case "-": zoom(0.8); break;
        case "0": state.scale = 1; state.x = 0; state.y = 0; apply(); break;
        case "ArrowLeft": state.x += step; apply(); break;
        case "ArrowRight": state.x -= step; apply(); break;
        case "ArrowUp": state.y += step; apply(); break;
        case "ArrowDown": state.y -= step; apply(); break;
        default: handled = false;
      }
      if (state.scale <= 1 && event.key.indexOf("Arrow") === 0) {
        handled = false;  // nothing to move: the arrows scroll the page
      }
      if (handled) { event.preventDefault(); }
    });
    apply();
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-viewer]").forEach(setupViewer);
    // a link to one implant (#fixture-...: the one just marked) opens its candidates
    var target = location.hash && document.getElementById(decodeURIComponent(location.hash.slice(1)));
    if (target && target.tagName === "DETAILS") { target.open = true; target.scrollIntoView({ block: "center" }); }
  });
  // the names of the systems a form sends (the chosen radio first, then the ticked boxes, then systems stated for
  // an implant only): "A (M), B (N)"
  function chosenSystems(form) {
    var names = [];
    form.querySelectorAll("input[data-name]:checked, select[data-implant] option[data-name]:checked").forEach(
      function (input) {
        if (!input.disabled && names.indexOf(input.dataset.name) < 0) { names.push(input.dataset.name); }
      });
    return names.join(", ");
  }
  // forms that reach the dentist (approve, reject) ask first: one click must not send an irreversible result;
  // the approval's question names what it sends
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form || !form.dataset || !form.dataset.confirm) { return; }
    var question = form.dataset.confirm.replace("{systems}", function () { return chosenSystems(form); });
    if (!window.confirm(question)) {
      event.preventDefault();
    }
  });
  // a form is sent once: a second click (or Enter) while the answer is on its way does nothing, so a double click
  // cannot read a case's implants twice or upload the same images twice. HTMX forms (prevented above) are not touched
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (event.defaultPrevented || !form || !form.matches || !form.matches("form[method=post]")) { return; }
    if (form.dataset.sent) {
      event.preventDefault();
      return;
    }
    form.dataset.sent = "1";
    form.setAttribute("aria-busy", "true");
    form.querySelectorAll("button").forEach(function (button) { button.disabled = true; });
  });
  window.addEventListener("pageshow", function (event) {  // back to a page the browser kept: its forms work again
    if (!event.persisted) { return; }
    document.querySelectorAll("form[data-sent]").forEach(function (form) {
      delete form.dataset.sent;
      form.removeAttribute("aria-busy");
      form.querySelectorAll("button").forEach(function (button) { button.disabled = false; });
    });
  });
  // Enter in a search box inside a form searches; it never submits the form around it (the approval)
  document.addEventListener("keydown", function (event) {
    var input = event.target;
    if (event.key === "Enter" && input && input.matches && input.matches("form input[type=search]")) {
      event.preventDefault();
      input.dispatchEvent(new Event("search", { bubbles: true }));
    }
  });
  // the main system is not also one of the "other systems": its box is switched off while it is the chosen one
  function syncOthers(form) {
    var main = form.querySelector("input[name=system_id]:checked");
    form.querySelectorAll("input[name=other_system_ids]").forEach(function (box) {
      var same = main !== null && box.value === main.value;
      box.disabled = same;
      if (same) { box.checked = false; }
    });
  }
  document.addEventListener("change", function (event) {
    var input = event.target;
    if (input && input.name === "system_id" && input.form) {
      input.form.dataset.chosen = input.value;
      syncOthers(input.form);
    }
  });
  document.addEventListener("DOMContentLoaded", function () {
    var form = document.getElementById("approve-form");
    if (form) { syncOthers(form); }
    var url = new URL(window.location.href);
    if (url.searchParams.has("feito")) {  // the success message was shown: a reload or a bookmark must not repeat it
      url.searchParams.delete("feito");
      window.history.replaceState(window.history.state, "", url.pathname + url.search + url.hash);
    }
  });
  // the queue as the operator left it in this tab (status tab, filters, page): the case page's way back ("Fila" above
  // the case) opens that list again, after any action on the case too, not the default one
  var QUEUE = "raiox.queue";
  document.addEventListener("DOMContentLoaded", function () {
    try {
      if (document.querySelector("form[data-queue-filters]")) {
        var kept = new URLSearchParams(window.location.search);
        kept.delete("feito");
        window.sessionStorage.setItem(QUEUE, kept.toString());
        return;
      }
      var query = window.sessionStorage.getItem(QUEUE);
      if (!query) { return; }
      document.querySelectorAll("a[data-queue-link]").forEach(function (link) {
        link.setAttribute("href", link.getAttribute("href").split("?")[0] + "?" + query);
      });
    } catch (error) { /* no storage (a locked-down browser): the plain link to the queue */ }
  });
  document.addEventListener("htmx:afterRequest", function (event) {
    var form = event.target;
    var flash = document.getElementById("flash");
    // an old error does not outlive a success; a line that polls for itself (the delivery's) is no success of the
    // operator's: it leaves the message area alone (its element is swapped out: htmx tells its parent too, so the
    // request's own element is asked)
    var source = event.detail.requestConfig && event.detail.requestConfig.elt;
    if (event.detail.successful && flash && !(source && source.hasAttribute("data-poll"))) {
      flash.innerHTML = "";
    }
    if (form && form.matches && form.matches("form[data-reset-on-success]") && event.detail.successful) {
      form.reset();
    }
  });
  document.addEventListener("htmx:afterSwap", function (event) {
    var target = event.detail.target;
    if (target && target.id === "flash" && target.textContent.trim()) {
      target.scrollIntoView({ block: "center" });  // the error shows where the operator is looking
    }
    if (target && target.id === "system-results") {  // new search results: the main choice must survive them
      var form = target.closest("form");
      if (!form) { return; }
      var chosen = form.dataset.chosen;
      var main = (chosen && form.querySelector("input[name=system_id][value='" + CSS.escape(chosen) + "']")) ||
        form.querySelector("input[name=system_id]:checked") || form.querySelector("input[name=system_id]");
      if (main) { main.checked = true; }
      syncOthers(form);
    }
  });
})();
