"""The image format: manifest, chunk codec, repository. Pure: no pyudev, parted or textual."""
