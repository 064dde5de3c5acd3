/* The drawing page: the participant draws on the canvas with a mouse, a finger or a pen (pointer
   events), and Done (or the end of the time limit) posts the strokes in the raw Quick, Draw! layout:
   per stroke [[xs], [ys], [ts]], x and y in canvas units (0 to data-units whatever the canvas's size
   on screen, y downwards), t in whole milliseconds since the drawing's first point. The server
   checks all of it again (ratings/drawing.py). */
(function () {
  "use strict";
  var form = document.getElementById("drawing");
  var canvas = document.getElementById("canvas");
  var clearButton = document.getElementById("clear");
  var doneButton = document.getElementById("done");
  var timer = document.getElementById("timer");
  var units = Number(canvas.getAttribute("data-units"));
  var maxStrokes = Number(canvas.getAttribute("data-max-strokes"));
  var maxPoints = Number(canvas.getAttribute("data-max-points"));
  var seconds = Number(form.getAttribute("data-seconds"));  // 0: no time limit
  var context = canvas.getContext("2d");

  var strokes = [];      // the drawing so far, in the posted layout
  var current = null;    // the stroke being drawn, while a pointer is down
  var pointerId = null;  // the pointer drawing it
  var origin = null;     // the event time of the drawing's first point
  var lastT = 0;
  var points = 0;
  var over = false;      // sent, or out of time: no more drawing
  var tick = null;       // the time limit's clock

  function lineWidth() {  // about 3 CSS pixels, in canvas units
    return 3 * units / (canvas.getBoundingClientRect().width || units);
  }

  function fit() {
    // The canvas's pixels follow its size on screen, so lines stay sharp; the drawing is redrawn
    // from its points (a phone turned on its side resizes the canvas).
    var box = canvas.getBoundingClientRect();
    var ratio = window.devicePixelRatio || 1;
    canvas.width = Math.max(1, Math.round(box.width * ratio));
    canvas.height = Math.max(1, Math.round(box.height * ratio));
    redraw();
  }

  function redraw() {
    context.setTransform(canvas.width / units, 0, 0, canvas.height / units, 0, 0);
    context.clearRect(0, 0, units, units);
    context.lineCap = context.lineJoin = "round";
    context.strokeStyle = "#000";
    context.lineWidth = lineWidth();
    strokes.forEach(function (stroke) {
      for (var i = 0; i < stroke[0].length; i++) {
        segment(stroke, i);
      }
    });
  }

  function segment(stroke, i) {  // from point i - 1 to point i (a dot for a stroke's first point)
    var from = i ? i - 1 : i;
    context.beginPath();
    context.moveTo(stroke[0][from], stroke[1][from]);
    context.lineTo(stroke[0][i], stroke[1][i]);
    context.stroke();
  }

  function clamp(value) {
    return Math.min(units, Math.max(0, Math.round(value)));
  }

  function add(event, first) {
    // Every point of a stroke is recorded once it moved a whole unit, up to the server's bounds.
    var box = canvas.getBoundingClientRect();
    var x = clamp((event.clientX - box.left) * units / box.width);
    var y = clamp((event.clientY - box.top) * units / box.height);
    var xs = current[0], ys = current[1];
    if (!first && xs[xs.length - 1] === x && ys[ys.length - 1] === y) return;
    if (points >= maxPoints) return;
    if (origin === null) origin = event.timeStamp;
    var t = Math.max(lastT, Math.round(event.timeStamp - origin));  // never back, whatever the clock does
    xs.push(x);
    ys.push(y);
    current[2].push(t);
    lastT = t;
    points += 1;
    segment(current, xs.length - 1);
  }

  function changed() {
    clearButton.disabled = over || strokes.length === 0;
    doneButton.disabled = over || strokes.length === 0;
  }

  canvas.addEventListener("pointerdown", function (event) {
    if (over || current || !event.isPrimary || (event.pointerType === "mouse" && event.button !== 0)) return;
    if (strokes.length >= maxStrokes || points >= maxPoints) return;
    event.preventDefault();
    canvas.setPointerCapture(event.pointerId);
    pointerId = event.pointerId;
    current = [[], [], []];
    strokes.push(current);
    add(event, true);
    changed();
  });

  canvas.addEventListener("pointermove", function (event) {
    if (!current || event.pointerId !== pointerId) return;
    // A fast hand moves several times between two frames: the browser hands those over together.
    var moves = event.getCoalescedEvents ? event.getCoalescedEvents() : [];
    (moves.length ? moves : [event]).forEach(function (move) { add(move, false); });
  });

  function lift(event) {
    if (!current || event.pointerId !== pointerId) return;
    current = null;
    pointerId = null;
  }
  canvas.addEventListener("pointerup", lift);
  canvas.addEventListener("pointercancel", lift);

  clearButton.addEventListener("click", function () {
    strokes = [];
    current = null;
    pointerId = null;
    origin = null;
    lastT = 0;
    points = 0;
    redraw();
    changed();
  });

  form.addEventListener("submit", function (event) {
    if (!over && strokes.length === 0) {
      event.preventDefault();  // Done with nothing drawn: only the end of the time limit sends that
      return;
    }
    finish();
  });

  function finish() {
    over = true;
    current = null;
    clearInterval(tick);
    form.elements.strokes.value = JSON.stringify(strokes);
    changed();
  }

  if (seconds > 0) {
    var deadline = performance.now() + seconds * 1000;
    tick = setInterval(function () {
      var left = Math.max(0, Math.ceil((deadline - performance.now()) / 1000));
      timer.textContent = left + " s";
      timer.classList.toggle("low", left <= 5);
      if (left === 0) {
        finish();  // what was drawn is sent, an empty canvas too
        form.requestSubmit();
      }
    }, 200);
  }

  window.addEventListener("resize", fit);
  fit();
  changed();
})();
