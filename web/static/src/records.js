// 商談記録: the record page prints itself (the stylesheet's print rules leave the navigation and forms out).
export function startRecordPage() {
  document.getElementById("print-record")?.addEventListener("click", () => window.print());
}
