// A PNG that carries its figure's record, for the explorer's and the board's downloads: the
// record's JSON goes in a tEXt chunk under the key gdscope's own PNGs use (files.save_figure,
// records.read_record; the server says the key), so that `gdscope replay` makes the figure again.

// CRC-32 as PNG chunks use it.
const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});
function crc32(bytes) {
  let c = 0xffffffff;
  for (const b of bytes) c = CRC_TABLE[(c ^ b) & 255] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

// `png` with a tEXt chunk `key`: `text` after its header (IHDR); the text is kept to ASCII
// (JSON escapes the rest) since tEXt holds Latin-1.
export function withText(png, key, text) {
  const ascii = text.replace(/[\u0080-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
  const body = new TextEncoder().encode(`tEXt${key}\0${ascii}`);
  const chunk = new Uint8Array(body.length + 8), view = new DataView(chunk.buffer);
  view.setUint32(0, body.length - 4);
  chunk.set(body, 4);
  view.setUint32(body.length + 4, crc32(body));
  const header = 8 + 25;  // the signature, then IHDR (13 bytes of data, 12 of length, type, CRC)
  const out = new Uint8Array(png.length + chunk.length);
  out.set(png.subarray(0, header)); out.set(chunk, header); out.set(png.subarray(header), header + chunk.length);
  return out;
}

// Save `data` (bytes or text) as the file `name`.
export function download(name, data, type) {
  const link = document.createElement("a");
  link.href = URL.createObjectURL(new Blob([data], { type }));
  link.download = name;
  link.click();
  setTimeout(() => URL.revokeObjectURL(link.href), 1000);
}

// The PNG bytes of Plotly's picture of the chart `div`, as the page shows it (a data: URL,
// decoded here: the pages' policy lets them fetch only their own server).
export async function chartPng(div) {
  const url = await Plotly.toImage(div, { format: "png", width: div.clientWidth, height: div.clientHeight });
  const binary = atob(url.slice(url.indexOf(",") + 1));
  return Uint8Array.from(binary, (c) => c.charCodeAt(0));
}
