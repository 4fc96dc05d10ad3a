// Artist suggestions for the comma-separated "Artists you like" field (WAI-ARIA combobox pattern).
// Hand-written: one field, one fetch, a listbox; a library would outweigh the page. Completes the
// name after the last comma and keeps the ones before it.
(() => {
  const input = document.getElementById("artists");
  const list = document.getElementById("artist-suggestions");
  const node = document.getElementById("node");
  if (!input || !list) return;
  let active = -1;
  let timer = null;
  let request = 0;

  const parts = () => {
    const cut = input.value.lastIndexOf(",");
    return cut < 0 ? ["", input.value] : [input.value.slice(0, cut + 1) + " ", input.value.slice(cut + 1)];
  };
  const close = () => {
    list.hidden = true;
    list.innerHTML = "";
    active = -1;
    input.setAttribute("aria-expanded", "false");
    input.removeAttribute("aria-activedescendant");
  };
  const choose = (name) => {
    const [head] = parts();
    input.value = (head + name).replace(/^\s+/, "") + ", ";
    close();
    input.focus();
  };
  const highlight = (index) => {
    const options = list.querySelectorAll("[role=option]");
    options.forEach((option, i) => option.setAttribute("aria-selected", String(i === index)));
    active = index;
    if (options[index]) input.setAttribute("aria-activedescendant", options[index].id);
  };
  const show = (names) => {
    // A late answer must not move the highlight away from the name the person has arrowed to.
    const highlighted = active >= 0 ? list.querySelectorAll("[role=option]")[active]?.textContent : null;
    list.innerHTML = "";
    names.forEach((name, i) => {
      const option = document.createElement("li");
      option.id = `artist-option-${i}`;
      option.setAttribute("role", "option");
      option.setAttribute("aria-selected", "false");
      option.textContent = name;
      option.addEventListener("mousedown", (event) => { event.preventDefault(); choose(name); });
      list.appendChild(option);
    });
    list.hidden = names.length === 0;
    input.setAttribute("aria-expanded", String(names.length > 0));
    active = -1;
    if (highlighted != null && names.includes(highlighted)) highlight(names.indexOf(highlighted));
  };
  const suggest = async () => {
    const typed = parts()[1].trim();
    if (!typed) { close(); return; }
    const mine = ++request;
    const url = `${input.dataset.complete}?node=${encodeURIComponent(node ? node.value : "")}&q=${encodeURIComponent(typed)}`;
    try {
      const response = await fetch(url, { headers: { accept: "application/json" } });
      if (!response.ok || mine !== request) return;
      const [, names] = await response.json();
      if (mine === request) show(names);
    } catch (error) {
      close();
    }
  };
  // The listener picker lists the chosen node's listeners: another node reloads the form for its own.
  if (node && document.getElementById("listener")) {
    node.addEventListener("change", () => {
      window.location.assign(`/?node=${encodeURIComponent(node.value)}`);
    });
  }
  input.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(suggest, 120); });
  input.addEventListener("blur", () => setTimeout(close, 100));
  input.addEventListener("keydown", (event) => {
    const options = list.querySelectorAll("[role=option]");
    if (list.hidden || options.length === 0) return;
    if (event.key === "ArrowDown") { event.preventDefault(); highlight((active + 1) % options.length); }
    else if (event.key === "ArrowUp") { event.preventDefault(); highlight((active - 1 + options.length) % options.length); }
    else if (event.key === "Enter" && active >= 0) { event.preventDefault(); choose(options[active].textContent); }
    else if (event.key === "Escape") { close(); }
  });
})();
