"""The page around the report: layout, style and the table-sorting script (no external files)."""

from __future__ import annotations

from string import Template

STYLE = """
:root { --fg:#1a202c; --muted:#4a5568; --line:#e2e8f0; --ok:#276749; --bad:#9b2c2c; --warn:#975a16; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
       color: var(--fg); margin: 0 auto; max-width: 1200px; padding: 24px; }
header { border-bottom: 2px solid var(--fg); margin-bottom: 16px; }
h1 { font-size: 24px; margin: 0 0 4px; }
h2 { font-size: 19px; margin: 32px 0 8px; border-bottom: 1px solid var(--line); padding-bottom: 4px; }
h3 { font-size: 15px; margin: 18px 0 6px; }
.meta { color: var(--muted); margin: 0 0 12px; }
nav a { margin-right: 12px; color: #2b6cb0; }
code { font: 12px/1.4 ui-monospace, "DejaVu Sans Mono", monospace; word-break: break-all; }
.verdict { padding: 10px 14px; border-radius: 6px; font-size: 16px; }
.verdict.ok { background: #f0fff4; border: 1px solid #9ae6b4; color: var(--ok); }
.verdict.bad { background: #fff5f5; border: 1px solid #feb2b2; color: var(--bad); }
.facts dt { font-weight: 600; margin-top: 6px; }
.facts dd { margin: 0 0 0 16px; }
.problems li { color: var(--bad); }
.warnings li { color: var(--warn); }
.tiles { display: flex; flex-wrap: wrap; gap: 10px; margin: 8px 0 16px; }
.tile { border: 1px solid var(--line); border-radius: 6px; padding: 8px 12px; min-width: 120px; }
.tile .n { display: block; font-size: 22px; font-weight: 700; }
.tile .label { color: var(--muted); font-size: 12px; }
.tile.warn { border-color: #feb2b2; background: #fff5f5; }
figure { margin: 8px 0; }
figure svg { max-width: 100%; height: auto; }
table { border-collapse: collapse; width: 100%; margin: 8px 0 16px; font-size: 13px; }
th, td { border-bottom: 1px solid var(--line); padding: 4px 8px; text-align: left; vertical-align: top; }
td { overflow-wrap: anywhere; }
th { background: #f7fafc; cursor: pointer; user-select: none; white-space: nowrap; position: sticky; top: 0; }
th::after { content: " \\2195"; color: #a0aec0; }
th[aria-sort="ascending"]::after { content: " \\2191"; color: var(--fg); }
th[aria-sort="descending"]::after { content: " \\2193"; color: var(--fg); }
tbody tr:nth-child(even) { background: #fbfdff; }
td.bad { color: var(--bad); font-weight: 600; }
td.deny { color: var(--bad); }
td.warn { color: var(--warn); font-weight: 600; }
.empty { color: var(--muted); font-style: italic; }
footer { margin-top: 40px; color: var(--muted); font-size: 12px; }
@media print { th { position: static; } nav { display: none; } }
"""

# Click (or Enter on) a column header to sort by it; a cell's data-sort, when present, is the key.
SCRIPT = """
(function () {
  function key(row, i) {
    var c = row.cells[i];
    if (!c) return "";
    var s = c.getAttribute("data-sort");
    if (s !== null && s !== "" && !isNaN(Number(s))) return Number(s);
    return (s !== null ? s : c.textContent).toLowerCase();
  }
  function sort(th) {
    var table = th.closest("table"), body = table.tBodies[0];
    var i = Array.prototype.indexOf.call(th.parentNode.children, th);
    var asc = th.getAttribute("aria-sort") !== "ascending";
    Array.prototype.forEach.call(th.parentNode.children, function (h) { h.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", asc ? "ascending" : "descending");
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = key(a, i), y = key(b, i);
      if (x === y) return 0;
      if (typeof x === "number" && typeof y === "number") return asc ? x - y : y - x;
      return asc ? String(x).localeCompare(String(y)) : String(y).localeCompare(String(x));
    });
    rows.forEach(function (r) { body.appendChild(r); });
  }
  document.querySelectorAll("table.sortable th").forEach(function (th) {
    th.addEventListener("click", function () { sort(th); });
    th.addEventListener("keydown", function (e) { if (e.key === "Enter") sort(th); });
  });
  document.documentElement.setAttribute("data-sorting", "ready");
})();
"""

PAGE = Template("""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="$csp">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>$title</title>
<style>$style</style>
</head>
<body>
<header>
<h1>Warden audit report</h1>
<p class="meta">Decisions from $period · generated $generated from $source ($total entries in the ledger)</p>
<nav><a href="#verification">Verification</a><a href="#grants">Grants</a><a href="#latency">Latency</a><a href="#approvals">Approvals</a><a href="#breakglass">Break-glass</a><a href="#endings">Expiries &amp; revocations</a><a href="#failed">Failed controls</a><a href="#coverage">Control coverage</a><a href="#entries">All entries</a></nav>
</header>
<main>
$body
</main>
<footer>Every figure on this page is computed from the signed ledger entries exported beside it
(<code>ledger.jsonl</code>); entry numbers refer to their <code>id</code>. Times are UTC. People are shown by
Discord user id, with the name the ledger's own reasons give them where there is one.</footer>
<script>$script</script>
</body>
</html>
""")
