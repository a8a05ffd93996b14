// The admin's "API key created" page: copy the key shown once. The button stays hidden
// without script, where selecting the field's text is the way to copy.
document.addEventListener("DOMContentLoaded", () => {
  const button = document.getElementById("copy-key");
  const field = document.getElementById(button.dataset.copies);
  const note = document.getElementById("copy-key-note");
  button.hidden = false;
  button.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(field.value);
    } catch (_) {
      field.select(); // no clipboard API (plain http): copy the selection the old way
      document.execCommand("copy");
    }
    note.textContent = "Copied.";
  });
});
