// The call page: the word being played is highlighted; a click on a word, a time or an evidence seeks there.
// Plain JS, no build step; loaded from this site only (the CSP allows no inline script).
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const player = document.getElementById("player");
  // In time order (turns of the two parties overlap, so the page's order is not quite the time order).
  const words = Array.from(document.querySelectorAll("#transcript .w"))
    .sort((a, b) => parseFloat(a.dataset.s) - parseFloat(b.dataset.s));
  const starts = words.map((w) => parseFloat(w.dataset.s));
  let current = null;

  function seek(seconds) {
    if (!player) return;
    player.currentTime = seconds;
    const playing = player.play();
    if (playing && playing.catch) playing.catch(() => {});  // autoplay refused: the position is set anyway
  }

  // The last word that started at or before `time`: in a pause it stays marked, so the reader keeps their place.
  function wordAt(time) {
    let low = 0, high = starts.length - 1, found = -1;
    while (low <= high) {
      const middle = (low + high) >> 1;
      if (starts[middle] <= time) { found = middle; low = middle + 1; } else { high = middle - 1; }
    }
    return found < 0 ? null : words[found];
  }

  function highlight() {
    const word = wordAt(player.currentTime);
    if (word === current) return;
    if (current) current.classList.remove("playing");
    if (word) word.classList.add("playing");
    current = word;
  }

  if (player) {
    player.addEventListener("timeupdate", highlight);
    player.addEventListener("seeked", highlight);
  }
  document.addEventListener("click", (event) => {
    const target = event.target.closest("[data-seek], #transcript .w");
    if (!target) return;
    seek(parseFloat(target.dataset.seek !== undefined ? target.dataset.seek : target.dataset.s));
  });
  // A link from the list's search result: /calls/ID#t=12.5 starts at that turn.
  const at = /^#t=([0-9.]+)$/.exec(window.location.hash);
  if (at && player) {
    player.addEventListener("loadedmetadata", () => { player.currentTime = parseFloat(at[1]); highlight(); },
                            { once: true });
  }
});
