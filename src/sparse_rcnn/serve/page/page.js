// The page of `sparse-rcnn serve`: send one image to /v1/detect (score_thr=0), draw the answer,
// filter it live with the slider. Names from the model are only ever set as text, never as HTML.
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const view = $("view"), ctx = view.getContext("2d");
  const state = { image: null, record: null };
  const colors = ["#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#46f0f0", "#f032e6", "#bcf60c"];

  // with an API key set, /v1/info (like /v1/detect) answers 401 without it: then ask for the key
  fetch("v1/info").then((r) => { $("keyrow").hidden = r.status !== 401; }).catch(() => {});

  function setStatus(text, isError) {
    $("status").textContent = text;
    $("status").className = isError ? "error" : "";
  }

  function threshold() { return parseFloat($("thr").value); }

  function render() {
    $("thrval").textContent = threshold().toFixed(2);
    if (!state.image) return;
    const img = state.image;
    // shown at most 860 x 640 pixels, small images enlarged up to 4 times; boxes follow the scale
    const scale = Math.min(860 / img.naturalWidth, 640 / img.naturalHeight, 4);
    view.width = Math.round(img.naturalWidth * scale); view.height = Math.round(img.naturalHeight * scale);
    view.dataset.scale = String(scale);
    ctx.imageSmoothingEnabled = scale < 1;
    ctx.drawImage(img, 0, 0, view.width, view.height);
    const rows = $("rows");
    rows.replaceChildren();
    if (!state.record) return;
    const kept = state.record.detections.filter((d) => d.score >= threshold());
    const line = Math.max(2, Math.round(Math.min(view.width, view.height) / 250));
    ctx.lineWidth = line;
    ctx.font = `${6 * line + 6}px sans-serif`;
    kept.forEach((d, i) => {
      const [x1, y1, x2, y2] = d.box.map((v) => v * scale), color = colors[d.label % colors.length];
      const text = `${d.category} ${d.score.toFixed(2)}`;
      ctx.strokeStyle = color; ctx.strokeRect(x1, y1, x2 - x1, y2 - y1);
      const tw = ctx.measureText(text).width, th = 6 * line + 8;
      // the label above the box's corner, kept inside the picture where the box leaves it
      const tx = Math.max(0, Math.min(x1, view.width - tw - 6));
      const ty = Math.max(0, Math.min(y1 - th < 0 ? y1 : y1 - th, view.height - th));
      ctx.fillStyle = color; ctx.fillRect(tx, ty, tw + 6, th);
      ctx.fillStyle = "#fff"; ctx.fillText(text, tx + 3, ty + th - line - 2);
      const tr = document.createElement("tr");
      const swatch = document.createElement("span");
      swatch.className = "swatch"; swatch.style.background = color;
      const cells = [String(i + 1), d.category, d.score.toFixed(3), d.box.map((v) => v.toFixed(1)).join(", ")];
      cells.forEach((c, j) => {
        const td = document.createElement("td");
        if (j === 1) td.appendChild(swatch);
        td.appendChild(document.createTextNode(c));
        tr.appendChild(td);
      });
      rows.appendChild(tr);
    });
    $("table").hidden = kept.length === 0;
    const total = state.record.detections.length;
    setStatus(`${kept.length} of ${total} detections with score >= ${threshold().toFixed(2)}`);
  }

  async function detect(file) {
    state.record = null;
    const url = URL.createObjectURL(file);
    const img = new Image();
    img.onload = () => { state.image = img; render(); };
    img.src = url;
    setStatus("detecting...");
    const form = new FormData();
    form.append("image", file, file.name);
    const headers = {};
    if ($("key").value) headers.Authorization = "Bearer " + $("key").value;
    try {
      const r = await fetch("v1/detect?score_thr=0", { method: "POST", body: form, headers: headers });
      const body = await r.json();
      if (!r.ok) { setStatus(`${r.status}: ${body.error}`, true); render(); return; }
      state.record = body;
      document.body.dataset.detections = String(body.detections.length);
      render();
    } catch (e) {
      setStatus("request failed: " + e, true);
    }
  }

  $("file").addEventListener("change", (e) => { if (e.target.files.length) detect(e.target.files[0]); });
  $("thr").addEventListener("input", render);
  const drop = $("drop");
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault(); drop.classList.remove("over");
    if (e.dataTransfer.files.length) detect(e.dataTransfer.files[0]);
  });
})();
