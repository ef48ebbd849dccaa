"""The image format: manifest, chunk codec, and the repository that holds images (a
folder, read and written; a web server, read-only). No udev, libparted, Textual or mounts:
where a repository lives and how it is reached is rescue.repo."""
