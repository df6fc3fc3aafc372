# %% [markdown]
# # Masks on a video
#
# Propagate the first frame's object mask through a video with the shipped FC model, write
# the masks as palette PNGs and an overlay GIF. Runs offline, top to bottom, on CPU: on a
# DAVIS sequence when the shared data is there, else on a generated clip.

# %%
from pathlib import Path

import sfcprop
from sfcprop import io
from sfcprop.bench import datasets
from sfcprop.bench.synthetic import generate_clip
from sfcprop.io import viz

out = Path("example-output/masks")
out.mkdir(parents=True, exist_ok=True)

# %% Frames and the first mask: any folder of frames, a video file (with PyAV), an array...
root = datasets.data_root()
davis = root / "davis2016" if root else None
if davis and (davis / "JPEGImages/480p/blackswan").is_dir():
    frames = sorted((davis / "JPEGImages/480p/blackswan").glob("*.jpg"))[:12]
    first_mask = davis / "Annotations2017first/blackswan/00000.png"
else:
    clip = generate_clip(num_frames=16)
    frames, first_mask = clip.frames, clip.masks[0].numpy()

# %% Propagate (short_side=... would run the network on smaller frames; ids stay full size)
result = sfcprop.propagate(frames, first_mask, backbone="fc", progress=True)
print(result.ids.shape, "ids", result.label_ids)

# %% Write palette PNGs and an overlay GIF
for t, ids in enumerate(result.ids):
    io.write_mask(out / f"{t:05d}.png", ids)
images = [viz.overlay(f, ids) for f, ids in zip(io.iter_frames(frames), result.ids, strict=True)]
viz.save_gif(images, out / "overlay.gif")
print("wrote", out)

# %% [markdown]
# Long videos: `sfcprop.propagate_iter(...)` yields each frame's result (`r.t`, `r.ids`,
# `r.soft`, `r.confidence`, `r.flags`) as it is done, so
# each mask can be written and dropped; `sfcprop propagate VIDEO.mp4 MASK.png --out DIR`
# does that from the command line.

# %% In a notebook, one line shows the result inline
viz.show(frames, result, max_side=240)  # frames shrunk to 240 px: a light preview
