/*
 * Static freeze-strategy explorer (chapter 2): the live widget's controls over precomputed runs.
 * No kernel and no network: the runs come from grid.json (written by scripts/explorer_grid.py) and the charts
 * from the vendored Vega, Vega-Lite and vega-embed builds in ./vendor/.
 *
 * Embed (a raw-HTML Markdown cell; paths are relative to the page):
 *   <div class="static-explorer" data-grid="../_static/explorer/grid.json"></div>
 *   <script src="../_static/explorer/explorer.js"></script>
 *
 * A URL hash preselects a setting, e.g. #static-explorer?strategy=full&dataset=faces&labels_per_class=5&epochs=3
 */
(function () {
  "use strict";

  var SCRIPT = document.currentScript;
  var BASE = SCRIPT && SCRIPT.src ? SCRIPT.src.replace(/[^/]*$/, "") : "";
  var LIBS = ["vega", "vega-lite", "vega-embed"];
  // The live widget's controls, in its order and with its descriptions (utils/explorer.py: explorer_widget).
  var CONTROLS = [
    ["strategy", "strategy"],
    ["k", "blocks (top k / gradual)"],
    ["lr_mult", "backbone LR \u00d7"],
    ["labels_per_class", "labels per class"],
    ["epochs", "epochs"],
    ["dataset", "dataset"]
  ];
  var NUMERIC = { k: 1, lr_mult: 1, labels_per_class: 1, epochs: 1 };
  var CSS =
    ".static-explorer{border:1px solid var(--pst-color-border,#d0d7de);border-radius:6px;padding:.8em 1em;margin:1em 0}" +
    ".static-explorer .se-note{font-size:.85em;opacity:.8;margin:.2em 0 .6em}" +
    ".static-explorer .se-controls{display:grid;grid-template-columns:repeat(auto-fill,minmax(250px,1fr));gap:.35em 1.2em;align-items:center}" +
    ".static-explorer .se-control{display:flex;gap:.5em;align-items:center;justify-content:space-between}" +
    ".static-explorer .se-control label{font-size:.9em}" +
    ".static-explorer select{min-width:9em;padding:.1em .3em;background:var(--pst-color-background,#fff);color:var(--pst-color-text-base,#222);border:1px solid var(--pst-color-border,#bbb);border-radius:4px}" +
    ".static-explorer select:disabled{opacity:.55}" +
    ".static-explorer .se-buttons{display:flex;gap:.6em;margin:.7em 0}" +
    ".static-explorer button{padding:.25em .9em;border-radius:4px;border:1px solid var(--pst-color-border,#bbb);background:var(--pst-color-surface,#f6f8fa);color:var(--pst-color-text-base,#222);cursor:pointer}" +
    ".static-explorer button.se-primary{background:var(--pst-color-primary,#0a7d91);border-color:var(--pst-color-primary,#0a7d91);color:#fff}" +
    ".static-explorer .se-chart{width:100%;min-height:300px}" +
    ".static-explorer .se-table-wrap{overflow-x:auto}" +
    ".static-explorer table{font-size:.82em;border-collapse:collapse;width:100%;margin-top:.5em}" +
    ".static-explorer th,.static-explorer td{padding:.2em .4em;border-bottom:1px solid var(--pst-color-border,#ddd);text-align:right;white-space:nowrap}" +
    ".static-explorer th{white-space:normal;vertical-align:bottom;font-weight:600}" +
    ".static-explorer td[data-field=strategy]{white-space:normal;min-width:7em}" +
    ".static-explorer th:nth-child(2),.static-explorer td:nth-child(2),.static-explorer th:nth-child(3),.static-explorer td:nth-child(3){text-align:left}" +
    ".static-explorer tr[data-role=current]{font-weight:600}" +
    ".static-explorer .se-error{color:#b00020}";

  function loadScript(src) {
    return new Promise(function (resolve, reject) {
      var s = document.createElement("script");
      s.src = src;
      s.onload = resolve;
      s.onerror = function () { reject(new Error("could not load " + src)); };
      document.head.appendChild(s);
    });
  }

  // With RequireJS on the page (Jupyter widgets' loader), the UMD builds register as AMD modules and set no
  // globals, so load them through it; otherwise as plain scripts, in dependency order.
  var vegaEmbedPromise = null;
  function loadVegaEmbed() {
    if (vegaEmbedPromise) return vegaEmbedPromise;
    if (window.vegaEmbed) return (vegaEmbedPromise = Promise.resolve(window.vegaEmbed));
    var req = window.requirejs || window.require;
    if (typeof window.define === "function" && window.define.amd && req && typeof req.config === "function") {
      var paths = {};
      LIBS.forEach(function (name) { paths[name] = BASE + "vendor/" + name + ".min"; });
      req.config({ paths: paths });
      vegaEmbedPromise = new Promise(function (resolve, reject) { req(["vega-embed"], resolve, reject); });
    } else {
      vegaEmbedPromise = LIBS.reduce(function (p, name) {
        return p.then(function () { return loadScript(BASE + "vendor/" + name + ".min.js"); });
      }, Promise.resolve()).then(function () { return window.vegaEmbed; });
    }
    return vegaEmbedPromise;
  }

  // grid.json over http(s); from disk (file://), where fetch is refused, the same data as grid.js.
  function loadGrid(url) {
    var name = url.split("/").pop();
    var have = function () { return window.STATIC_EXPLORER_GRIDS && window.STATIC_EXPLORER_GRIDS[name]; };
    if (have()) return Promise.resolve(have());
    if (location.protocol === "file:") return loadScript(url.replace(/\.json$/, ".js")).then(have);
    return fetch(url).then(function (r) {
      if (!r.ok) throw new Error("could not load " + url + " (" + r.status + ")");
      return r.json();
    });
  }

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (key) { node.setAttribute(key, attrs[key]); });
    (children || []).forEach(function (c) { node.appendChild(typeof c === "string" ? document.createTextNode(c) : c); });
    return node;
  }

  function fmt(x, digits) { return x === null || x === undefined ? "\u2014" : Number(x).toFixed(digits); }
  function compact(n) { return n >= 1e6 ? (n / 1e6).toFixed(2) + " M" : n >= 1e4 ? (n / 1e3).toFixed(1) + " k" : String(n); }
  function pm(mean, sd) { return fmt(mean, 3) + " \u00b1 " + fmt(sd, 3); }
  function optionText(key, value, grid, strategy) {
    if (value === null) return key === "lr_mult" ? "\u2014 (not used)" : "\u2014";
    if (key === "strategy") return grid.strategies[value].label;
    if (key === "k" && (strategy === "full" || strategy === "scratch")) return "all (" + value + ")";
    return String(value);
  }

  function hashSettings() {
    var m = location.hash.match(/^#static-explorer\?(.*)$/);
    var out = {};
    if (!m) return out;
    m[1].split("&").forEach(function (pair) {
      var kv = pair.split("=");
      if (kv.length === 2) out[decodeURIComponent(kv[0])] = decodeURIComponent(kv[1]);
    });
    return out;
  }

  function Explorer(root, grid, vegaEmbed) {
    this.root = root;
    this.grid = grid;
    this.vegaEmbed = vegaEmbed;
    this.comparison = [];
    this.view = null;
    this.uid = "se" + Math.random().toString(36).slice(2, 8);
    this.state = Object.assign({}, grid.defaults);
    var wanted = hashSettings();
    Object.keys(wanted).forEach(function (key) {
      if (key in this.state) this.state[key] = key in NUMERIC && wanted[key] !== "null" ? Number(wanted[key]) : (wanted[key] === "null" ? null : wanted[key]);
    }, this);
    this.build();
    this.snap();
    this.refresh();
  }

  Explorer.prototype.axes = function () { return this.grid.strategies[this.state.strategy].axes; };

  // Keep every control on a value the grid has for the current strategy: the current one if possible, else the
  // default, else the nearest (numbers) or the first.
  Explorer.prototype.snap = function () {
    if (!this.grid.strategies[this.state.strategy]) this.state.strategy = Object.keys(this.grid.strategies)[0];
    var axes = this.axes(), state = this.state, defaults = this.grid.defaults;
    Object.keys(axes).forEach(function (key) {
      var values = axes[key];
      if (values.indexOf(state[key]) >= 0) return;
      if (values.indexOf(defaults[key]) >= 0) { state[key] = defaults[key]; return; }
      if (typeof state[key] === "number" && values.every(function (v) { return typeof v === "number"; })) {
        state[key] = values.reduce(function (best, v) {
          return Math.abs(Math.log(v + 1) - Math.log(state[key] + 1)) < Math.abs(Math.log(best + 1) - Math.log(state[key] + 1)) ? v : best;
        }, values[0]);
      } else {
        state[key] = values[0];
      }
    });
  };

  Explorer.prototype.build = function () {
    var self = this, grid = this.grid;
    this.root.innerHTML = "";
    if (!document.getElementById("static-explorer-style")) {
      document.head.appendChild(el("style", { id: "static-explorer-style" }, [CSS]));
    }
    var g = grid.generated || {};
    this.root.appendChild(el("p", { "class": "se-note" }, [
      "Precomputed runs of utils.explorer.run_strategy: " + grid.seeds.length + " seeds per setting (curves: mean; band: min\u2013max over seeds), " +
      "trained on one CPU thread" + (g.date ? " (" + g.date + ")" : "") + (grid.small ? "; a small development grid" : "") + "."
    ]));
    var controls = el("div", { "class": "se-controls" });
    this.selects = {};
    CONTROLS.forEach(function (c) {
      var id = self.uid + "-" + c[0];
      var select = el("select", { id: id, name: c[0], "data-control": c[0] });
      select.addEventListener("change", function () {
        var v = select.value;
        self.state[c[0]] = v === "null" ? null : (c[0] in NUMERIC ? Number(v) : v);
        self.snap();
        self.refresh();
      });
      self.selects[c[0]] = select;
      controls.appendChild(el("div", { "class": "se-control" }, [el("label", { "for": id }, [c[1]]), select]));
    });
    this.root.appendChild(controls);
    var add = el("button", { type: "button", "class": "se-primary", "data-action": "add" }, ["Add to comparison"]);
    var clear = el("button", { type: "button", "data-action": "clear" }, ["Clear"]);
    add.addEventListener("click", function () {
      var cur = self.current();
      if (cur && !self.comparison.some(function (c) { return c.id === cur.id; })) self.comparison.push(cur);
      self.refresh();
    });
    clear.addEventListener("click", function () { self.comparison = []; self.refresh(); });
    this.root.appendChild(el("div", { "class": "se-buttons" }, [add, clear]));
    this.chart = el("div", { "class": "se-chart" });
    this.root.appendChild(this.chart);
    this.table = el("div", { "class": "se-table-wrap" });
    this.root.appendChild(this.table);
  };

  Explorer.prototype.fillSelects = function () {
    var self = this, axes = this.axes();
    CONTROLS.forEach(function (c) {
      var key = c[0], select = self.selects[key];
      var values = key === "strategy" ? Object.keys(self.grid.strategies) : axes[key];
      select.innerHTML = "";
      values.forEach(function (v) {
        var option = el("option", { value: String(v) }, [optionText(key, v, self.grid, self.state.strategy)]);
        if (v === self.state[key]) option.selected = true;
        select.appendChild(option);
      });
      select.value = String(self.state[key]);
      select.disabled = values.length < 2;
    });
  };

  // The precomputed result for the current controls: curves cut at the chosen epoch.
  Explorer.prototype.current = function () {
    var s = this.state, info = this.grid.strategies[s.strategy];
    var run = this.grid.runs.filter(function (r) {
      return r.strategy === s.strategy && r.dataset === s.dataset && r.labels_per_class === s.labels_per_class &&
        r.k === s.k && r.lr_mult === s.lr_mult && (info.prefix_epochs ? r.epochs >= s.epochs : r.epochs === s.epochs);
    })[0];
    if (!run) return null;
    var e = s.epochs, cut = function (xs) { return xs.slice(0, e); };
    return {
      id: [s.strategy, s.dataset, s.labels_per_class, s.k, s.lr_mult, e].join("|"),
      strategy: s.strategy, label: info.label, dataset: s.dataset, labels_per_class: s.labels_per_class,
      n_train: run.n_train, k: run.k, lr_mult: run.lr_mult, epochs: e, seeds: run.seeds.length,
      trainable_params: run.trainable_params,
      val: { mean: cut(run.val_summary.mean), sd: cut(run.val_summary.sd), min: cut(run.val_summary.min), max: cut(run.val_summary.max) },
      test: { mean: run.test_summary.mean[e - 1], sd: run.test_summary.sd[e - 1] },
      seconds: cut(run.epoch_seconds).reduce(function (a, b) { return a + b; }, 0)
    };
  };

  Explorer.prototype.describe = function (c) {
    var parts = [c.label];
    if (c.strategy === "top_k" || c.strategy === "gradual") parts[0] += " (k=" + c.k + ")";
    parts.push(c.dataset, c.labels_per_class + "/class");
    if (c.lr_mult !== null && c.strategy !== "scratch") parts.push("LR \u00d7" + c.lr_mult);
    parts.push(c.epochs + " ep");
    return parts.join(" \u00b7 ");
  };

  Explorer.prototype.refresh = function () {
    this.fillSelects();
    var cur = this.current();
    var rows = this.comparison.map(function (c, i) { return { name: (i + 1) + ". " + this.describe(c), choice: c, role: "compare" }; }, this);
    if (cur) {
      var pinned = this.comparison.some(function (c) { return c.id === cur.id; });
      rows.push({ name: "current: " + this.describe(cur), choice: cur, role: "current", inChart: !pinned });
    }
    this.renderTable(rows, cur);
    this.renderChart(rows.filter(function (r) { return r.inChart !== false; }));
  };

  Explorer.prototype.renderTable = function (rows, cur) {
    var head = ["", "strategy", "dataset", "labels / class (images)", "backbone LR \u00d7", "epochs",
      "val acc (mean \u00b1 sd)", "test acc (mean \u00b1 sd)", "trainable params", "train CPU s"];
    var table = el("table", { "class": "se-results" });
    table.appendChild(el("thead", {}, [el("tr", {}, head.map(function (h) { return el("th", {}, [h]); }))]));
    var body = el("tbody");
    rows.forEach(function (r, i) {
      var c = r.choice;
      var cells = [
        ["n", r.role === "current" ? "current" : String(i + 1)],
        ["strategy", c.label + (c.strategy === "top_k" || c.strategy === "gradual" ? " (k=" + c.k + ")" : "")],
        ["dataset", c.dataset], ["labels_per_class", c.labels_per_class + " (" + c.n_train + ")"],
        ["lr_mult", c.lr_mult === null || c.strategy === "scratch" ? "\u2014" : String(c.lr_mult)],
        ["epochs", String(c.epochs)], ["val", pm(c.val.mean[c.epochs - 1], c.val.sd[c.epochs - 1])],
        ["test", pm(c.test.mean, c.test.sd)], ["trainable_params", compact(c.trainable_params), String(c.trainable_params)],
        ["seconds", fmt(c.seconds, 1)]
      ];
      body.appendChild(el("tr", { "data-role": r.role }, cells.map(function (cell) {
        var attrs = { "data-field": cell[0] };
        if (cell.length > 2) { attrs["data-value"] = cell[2]; attrs.title = Number(cell[2]).toLocaleString("en-US"); }
        return el("td", attrs, [cell[1]]);
      })));
    });
    table.appendChild(body);
    this.table.innerHTML = "";
    if (!cur) {
      this.table.appendChild(el("p", { "class": "se-error", "data-role": "missing" }, ["This combination was not precomputed; choose another, or run the live widget in Jupyter."]));
    }
    this.table.appendChild(table);
  };

  Explorer.prototype.renderChart = function (rows) {
    var data = [], order = [];
    rows.forEach(function (r) {
      order.push(r.name);
      r.choice.val.mean.forEach(function (m, i) {
        data.push({ series: r.name, epoch: i + 1, mean: m, lo: r.choice.val.min[i], hi: r.choice.val.max[i] });
      });
    });
    var maxEpoch = Math.max.apply(null, [1].concat(data.map(function (d) { return d.epoch; })));
    var spec = {
      $schema: "https://vega.github.io/schema/vega-lite/v6.json",
      width: "container", height: 260, autosize: { type: "fit-x", contains: "padding" },
      data: { values: data },
      encoding: {
        x: { field: "epoch", type: "quantitative", title: "epoch", scale: { domain: [1, Math.max(2, maxEpoch)] }, axis: { tickMinStep: 1, format: "d" } },
        color: { field: "series", type: "nominal", title: null, sort: order, legend: { orient: "bottom", direction: "vertical", labelLimit: 700 } }
      },
      layer: [
        { mark: { type: "area", opacity: 0.18 },
          encoding: { y: { field: "lo", type: "quantitative", title: "validation accuracy", scale: { domain: [0, 1] } }, y2: { field: "hi" } } },
        { mark: { type: "line", point: true },
          encoding: { y: { field: "mean", type: "quantitative" },
            tooltip: [{ field: "series", title: "run" }, { field: "epoch" }, { field: "mean", title: "val acc (mean)", format: ".3f" },
              { field: "lo", title: "min", format: ".3f" }, { field: "hi", title: "max", format: ".3f" }] } }
      ]
    };
    var self = this, dark = document.documentElement.getAttribute("data-theme") === "dark";
    var opts = { actions: false, renderer: "svg", mode: "vega-lite" };
    if (dark) opts.theme = "dark";
    var token = this.token = (this.token || 0) + 1;  // only the latest of overlapping renders is kept
    this.vegaEmbed(this.chart, spec, opts).then(function (result) {
      if (token !== self.token) { result.finalize(); return; }
      if (self.view) self.view.finalize();
      self.view = result;
      self.root.setAttribute("data-rendered", String(Number(self.root.getAttribute("data-rendered") || 0) + 1));
    }).catch(function (err) { self.fail(err); });
  };

  Explorer.prototype.fail = function (err) { fail(this.root, err); };

  function fail(root, err) {
    root.appendChild(el("p", { "class": "se-error" }, ["The static explorer could not start: " + (err && err.message ? err.message : err)]));
    console.error("static explorer:", err);
  }

  function start() {
    var roots = document.querySelectorAll(".static-explorer, #static-explorer");
    Array.prototype.forEach.call(roots, function (root) {
      if (root.getAttribute("data-started")) return;
      root.setAttribute("data-started", "1");
      root.classList.add("static-explorer");
      var url = root.getAttribute("data-grid") || BASE + "grid.json";
      Promise.all([loadGrid(url), loadVegaEmbed()]).then(function (got) {
        root.explorer = new Explorer(root, got[0], got[1]);
      }).catch(function (err) { fail(root, err); });
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
