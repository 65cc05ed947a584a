// Videos load when they scroll into view: a page of 25 clips does not fetch 25 videos at once.
document.addEventListener("DOMContentLoaded", () => {
  const videos = document.querySelectorAll("video[data-src]");
  const load = (video) => {
    video.preload = "auto";
    video.src = video.dataset.src;
    video.removeAttribute("data-src");
  };
  if (!("IntersectionObserver" in window)) return videos.forEach(load);
  const observer = new IntersectionObserver((entries) => {
    for (const entry of entries) {
      if (entry.isIntersecting) { load(entry.target); observer.unobserve(entry.target); }
    }
  }, { rootMargin: "200px" });
  videos.forEach((video) => observer.observe(video));
});
