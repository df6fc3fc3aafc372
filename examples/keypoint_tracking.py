# %% [markdown]
# # Keypoint tracking
#
# Track points given on the first frame (JHMDB's encoding: one Gaussian channel per point
# on the feature grid, decoded from the 3 strongest cells) with the shipped FC model. Runs
# offline on CPU: on the JHMDB sample clip with its 15 joints when the shared data is there
# (and scores PCK against its annotation), else on a generated clip.

# %%
from pathlib import Path

import sfcprop
from sfcprop import io
from sfcprop.bench import datasets, metrics
from sfcprop.bench.synthetic import generate_clip
from sfcprop.io import viz

out = Path("example-output/keypoints")
out.mkdir(parents=True, exist_ok=True)

# %% Frames and points [K, 2] (x, y) in pixels of the first frame
root = datasets.data_root()
jhmdb = root / "jhmdb-sample" if root else None
if jhmdb and jhmdb.is_dir():
    frames = sorted((jhmdb / "Rename_Images").glob("*/*/*.png"))[:15]
    gt = io.read_joint_positions(next(jhmdb.glob("joint_positions/*/*/joint_positions.mat")))
    points, size = gt[0], (320, 320)  # JHMDB's protocol: frames at 320 x 320
else:
    clip = generate_clip(num_frames=12)
    frames, gt = clip.frames, None
    points, size = [[64.0, 84.0], [224.0, 132.0], [160.0, 40.0]], None

# %% Track (preset "jhmdb": top-10, 8 preceding frames, radius 3 cells)
tracks = sfcprop.track_keypoints(frames, points, backbone="fc", size=size, progress=True)
found, confidence = tracks.points.numpy(), tracks.confidence.numpy()  # [T, K, 2], [T, K]
print(found.shape, "mean confidence", confidence[1:].mean().round(3))
if gt is not None:
    n = len(found)
    print(
        f"PCK@0.1 {metrics.pck(found[1:], gt[1:n], 0.1):.1f}",
        f"PCK@0.2 {metrics.pck(found[1:], gt[1:n], 0.2):.1f}",
    )

# %% Write the tracks (CSV, JSON) and a GIF with the points (and the JHMDB skeleton)
io.write_tracks(out, found, confidence)
images = [viz.draw_keypoints(f, p) for f, p in zip(io.iter_frames(frames), found, strict=True)]
viz.save_gif(images, out / "tracks.gif")
print("wrote", out)

# %% In a notebook, one line shows the result inline
viz.show(frames, points=tracks, max_side=240)  # frames shrunk to 240 px: a light preview
