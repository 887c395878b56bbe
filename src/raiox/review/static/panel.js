/* Raiox AI panel: X-ray viewer (zoom, pan, contrast, brightness, invert) and small HTMX helpers. */
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

    function apply() {
      img.style.transform = "translate(" + state.x + "px," + state.y + "px) scale(" + state.scale + ")";
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
    stage.addEventListener("wheel", function (event) {
      event.preventDefault();
      zoom(event.deltaY < 0 ? 1.15 : 0.87);
    }, { passive: false });
    var drag = null;
    stage.addEventListener("pointerdown", function (event) {
      drag = { x: event.clientX - state.x, y: event.clientY - state.y };
      stage.setPointerCapture(event.pointerId);
      stage.classList.add("dragging");
    });
    stage.addEventListener("pointermove", function (event) {
      if (!drag) { return; }
      state.x = event.clientX - drag.x;
      state.y = event.clientY - drag.y;
      apply();
    });
    ["pointerup", "pointercancel"].forEach(function (name) {
      stage.addEventListener(name, function () { drag = null; stage.classList.remove("dragging"); });
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
      if (handled) { event.preventDefault(); }
    });
    apply();
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-viewer]").forEach(setupViewer);
  });
  // the names of the systems a form sends (the chosen radio first, then the ticked boxes): "A (M), B (N)"
  function chosenSystems(form) {
    var names = [];
    form.querySelectorAll("input[data-name]:checked").forEach(function (input) {
      if (!input.disabled) { names.push(input.dataset.name); }
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
  });
  document.addEventListener("htmx:afterRequest", function (event) {
    var form = event.target;
    var flash = document.getElementById("flash");
    if (event.detail.successful && flash) { flash.innerHTML = ""; }  // an old error does not outlive a success
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
