// Berth portal: the few behaviours plain HTML lacks. Loaded from /portal/assets (the page's policy
// allows no inline script). Everything works without it, less conveniently.
"use strict";

// Copy buttons: <button data-copy="ID"> copies the value of the element with that id.
document.addEventListener("click", (event) => {
  const button = event.target.closest("[data-copy]");
  if (button) {
    const source = document.getElementById(button.dataset.copy);
    navigator.clipboard.writeText(source.value || source.textContent).then(() => {
      button.textContent = "Copied";
    });
  }
  const reveal = event.target.closest("[data-reveal]");
  if (reveal) {
    const field = document.getElementById(reveal.dataset.reveal);
    const hidden = field.type === "password";
    field.type = hidden ? "text" : "password";
    reveal.textContent = hidden ? "Hide" : "Show";
    reveal.setAttribute("aria-pressed", String(hidden));
  }
});

// Inputs with data-pattern are checked as you type, with the message in data-message.
document.querySelectorAll("input[data-pattern]").forEach((input) => {
  const pattern = new RegExp(input.dataset.pattern);
  const message = document.getElementById(input.getAttribute("aria-describedby"));
  input.addEventListener("input", () => {
    const ok = input.value === "" || pattern.test(input.value);
    input.setCustomValidity(ok ? "" : input.dataset.message);
    input.setAttribute("aria-invalid", String(!ok));
    if (message) message.textContent = ok ? "" : input.dataset.message;
  });
});

// Confirmations by typing a name: the button stays disabled until the name is typed.
document.querySelectorAll("input[data-confirm]").forEach((input) => {
  const button = input.form.querySelector("button[type=submit]");
  const update = () => { button.disabled = input.value !== input.dataset.confirm; };
  input.addEventListener("input", update);
  update();
});
