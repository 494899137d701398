// A small client-side app: a list of items with a filter and a counter, rendered
// without a framework. The benchmark fetches this file as the static asset.

const items = [
  "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel",
  "india", "juliett", "kilo", "lima", "mike", "november", "oscar", "papa",
  "quebec", "romeo", "sierra", "tango", "uniform", "victor", "whiskey", "xray",
  "yankee", "zulu",
];

const state = { filter: "", clicks: 0 };

function element(tag, attributes = {}, children = []) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value);
  }
  for (const child of children) {
    node.append(typeof child === "string" ? document.createTextNode(child) : child);
  }
  return node;
}

function visibleItems() {
  const filter = state.filter.trim().toLowerCase();
  return filter ? items.filter((item) => item.includes(filter)) : items;
}

function render() {
  const root = document.getElementById("app");
  const input = element("input", {
    type: "search",
    placeholder: "Filter",
    value: state.filter,
    oninput: (event) => {
      state.filter = event.target.value;
      render();
      document.querySelector("input").focus();
    },
  });
  const list = element(
    "ul",
    {},
    visibleItems().map((item) => element("li", {}, [item])),
  );
  const counter = element(
    "button",
    {
      onclick: () => {
        state.clicks += 1;
        render();
      },
    },
    [`Clicked ${state.clicks} times`],
  );
  root.replaceChildren(
    element("h1", {}, ["Items"]),
    input,
    element("p", {}, [`${visibleItems().length} of ${items.length} shown`]),
    list,
    counter,
  );
}

render();
