"""A synthetic class of solved notebooks, for testing and benchmarking a similarity (plagiarism) detector.

A detector of the usual kind tokenizes the code (pygments), replaces every
identifier by one letter, drops comments and whitespace and compares k-gram
fingerprints. Renaming variables therefore does not make two solutions
different; only a different code structure does. To test such a detector we
need many notebooks that are honestly independent and a few that are copies,
and must know which are which.

How the class is made:

- every code answer cell of the master notebook (``source/clustering``) has
  four correct solutions: variant 0 is the master's own (read from the
  notebook), variants 1 to 3 are in :data:`VARIANTS`, written as different
  students would (loops or vectorised NumPy, ``np.bincount`` or
  ``np.add.at``, a ``while`` or a ``for`` loop, ...). Each variant is a tuple of
  solution bodies, one per ``### BEGIN SOLUTION`` region of the cell, dedented;
- every written answer (question1 to question3) is made of three sentence
  slots with four phrasings each (:data:`WRITTEN`);
- a student is a choice of variant per code cell and of phrasing per slot
  (:func:`independent_choices`: any two students share at most
  :data:`MAX_SHARED_CODE` variants and :data:`MAX_SHARED_WRITTEN` phrasings),
  turned into a notebook by :func:`solved_notebook`;
- :func:`copied` disguises a student's notebook as a plagiarist would (local
  names renamed, comments and blank lines changed, functions reordered, or
  the written answers reworded), keeping it correct;
- :func:`synthetic_class` puts it together: ``indep01`` ... ``indepNN`` and the
  copies of :data:`COPY_SOURCES`; :data:`COPIED_PAIRS` says which pairs are copies.

Usage::

    import nbformat
    from bench.similarity_class import synthetic_class, COPIED_PAIRS

    master = nbformat.read("source/clustering/clustering.ipynb", as_version=4)
    students = synthetic_class(master)          # {student id: notebook}
"""

from __future__ import annotations

import ast
import builtins
import copy
import io
import keyword
import re
import textwrap
import tokenize

import numpy as np

from coursekit.common import notebooks
from coursekit.steps import demo

#: The grade ids of the code answer cells, in notebook order.
CODE_CELLS = (
    "assign_clusters", "update_representatives", "clustering_objective", "kmeans", "preprocess_img",
    "image_compression", "compression_functions", "mnist_load_data", "preprocess_digits", "retrieve_info",
    "infer_labels", "evaluate_kmeans_classifier", "prepare_digit_image",
)
#: The grade ids of the written (markdown) answer cells.
WRITTEN_CELLS = ("question1", "question2", "question3")
#: Solutions per code cell, the master's (variant 0) included; phrasings per sentence slot.
N_VARIANTS = 4
N_PHRASINGS = 4
#: Most code cells (of 13) and written slots (of 9) that two independent students have in common.
MAX_SHARED_CODE = 5
MAX_SHARED_WRITTEN = 4
#: The ways :func:`copied` disguises a notebook.
COPY_METHODS = ("renamed", "reordered", "written")
#: Copy student id -> (the independent student it copies, how).
COPY_SOURCES = {
    "copy_renamed": ("indep03", "renamed"),
    "copy_reordered": ("indep07", "reordered"),
    "copy_written": ("indep11", "written"),
}
#: The (original, copy) pairs of :func:`synthetic_class`.
COPIED_PAIRS = frozenset((source, copy_id) for copy_id, (source, _) in COPY_SOURCES.items())


def _body(text):
    return textwrap.dedent(text).strip("\n")


# ---------------------------------------------------------------------------
# Code variants 1 to 3 of every code answer cell (variant 0 is the master's)
# ---------------------------------------------------------------------------

#: grade id -> (variant 1, variant 2, variant 3); a variant is a tuple of dedented
#: solution bodies, one per "### BEGIN SOLUTION" region of the cell, in order.
VARIANTS = {
    "assign_clusters": (
        # scipy's cdist
        (_body("""
            from scipy.spatial.distance import cdist

            distances = cdist(np.asarray(X, dtype=float), np.asarray(Z, dtype=float), metric="sqeuclidean")
            return distances.argmin(axis=1)
        """),),
        # a loop over the k representatives with np.linalg.norm
        (_body("""
            points = np.asarray(X, dtype=float)
            centres = np.asarray(Z, dtype=float)
            distances = np.empty((points.shape[0], centres.shape[0]))
            for j in range(centres.shape[0]):
                distances[:, j] = np.linalg.norm(points - centres[j], axis=1)
            return np.argmin(distances, axis=1)
        """),),
        # ||x||^2 - 2 x.z + ||z||^2 with a matrix product
        (_body("""
            X = np.asarray(X, dtype=np.float64)
            Z = np.asarray(Z, dtype=np.float64)
            cross = X @ Z.T
            d2 = (X * X).sum(axis=1)[:, None] - 2 * cross + (Z * Z).sum(axis=1)[None, :]
            return np.argmin(d2, axis=1)
        """),),
    ),
    "update_representatives": (
        # np.bincount with weights, one column at a time
        (_body("""
            X = np.asarray(X, dtype=float)
            c = np.asarray(c, dtype=np.int64)
            Z_prev = np.asarray(Z_prev, dtype=float)
            k = Z_prev.shape[0]
            counts = np.bincount(c, minlength=k)
            sums = np.column_stack([np.bincount(c, weights=X[:, d], minlength=k) for d in range(X.shape[1])])
            means = sums / np.maximum(counts, 1)[:, np.newaxis]
            return np.where(counts[:, np.newaxis] > 0, means, Z_prev)
        """),),
        # an explicit loop over the points
        (_body("""
            Z_prev = np.asarray(Z_prev, dtype=float)
            k, n = Z_prev.shape
            totals = np.zeros((k, n))
            sizes = np.zeros(k, dtype=int)
            for x_i, c_i in zip(np.asarray(X, dtype=float), c):
                totals[c_i] += x_i
                sizes[c_i] += 1
            Z = Z_prev.copy()
            for j in range(k):
                if sizes[j] != 0:
                    Z[j] = totals[j] / sizes[j]
            return Z
        """),),
        # a one-hot membership matrix
        (_body("""
            data = np.asarray(X, dtype=float)
            labels = np.asarray(c)
            k = np.shape(Z_prev)[0]
            onehot = (labels[:, None] == np.arange(k)[None, :]).astype(float)
            group_sizes = onehot.sum(axis=0)
            means = onehot.T @ data / np.maximum(group_sizes, 1)[:, None]
            return np.where(group_sizes[:, None] > 0, means, np.array(Z_prev, dtype=float))
        """),),
    ),
    "clustering_objective": (
        # np.linalg.norm of the residuals
        (_body("""
            residuals = np.asarray(X, dtype=float) - np.asarray(Z, dtype=float)[c]
            return float(np.mean(np.linalg.norm(residuals, axis=1) ** 2))
        """),),
        # a loop over the points
        (_body("""
            X = np.asarray(X, dtype=float)
            Z = np.asarray(Z, dtype=float)
            total = 0.0
            for i in range(len(X)):
                total += np.sum((X[i] - Z[c[i]]) ** 2)
            return float(total / len(X))
        """),),
        # einsum
        (_body("""
            diff = np.subtract(X, np.asarray(Z, dtype=float)[np.asarray(c)], dtype=float)
            return np.einsum("ij,ij->", diff, diff) / diff.shape[0]
        """),),
    ),
    "kmeans": (
        # a while loop with a counter; assign again after each update
        (_body("""
            X = np.asarray(X, dtype=float)
            Z = np.array(Z0, dtype=float)
            J_history = []
            c = assign_clusters(X, Z)
            iterations = 0
            while iterations < max_iter:
                Z = update_representatives(X, c, Z)
                J_history.append(clustering_objective(X, c, Z))
                iterations += 1
                c_new = assign_clusters(X, Z)
                if np.array_equal(c_new, c):
                    break
                c = c_new
            return c, Z, J_history
        """),),
        # while True, returning from inside the loop
        (_body("""
            Z = np.array(Z0, dtype=float, copy=True)
            history = []
            old_c = None
            steps = 0
            while True:
                c = assign_clusters(X, Z)
                converged = old_c is not None and (c == old_c).all()
                if converged or steps == max_iter:
                    return c, Z, history
                Z = update_representatives(X, c, Z)
                history.append(clustering_objective(X, c, Z))
                old_c = c
                steps += 1
        """),),
        # a for loop with a sentinel assignment instead of None
        (_body("""
            assert np.shape(Z0)[0] == k, "Z0 needs k rows"
            X = np.asarray(X, dtype=float)
            Z = np.asarray(Z0, dtype=float).copy()
            labels = np.full(X.shape[0], -1)
            J_history = []
            for _ in range(max_iter):
                new_labels = assign_clusters(X, Z)
                if np.all(new_labels == labels):
                    break
                labels = new_labels
                Z = update_representatives(X, labels, Z)
                J_history.append(clustering_objective(X, labels, Z))
            return labels, Z, J_history
        """),),
    ),
    "preprocess_img": (
        # the number of dimensions first, then the channels; alpha cut off explicitly
        (_body("""
            image = np.asarray(image)
            if len(image.shape) != 3:
                raise ValueError("the image must have 3 dimensions (rows, cols, channels), not %s" % (image.shape,))
            rows, cols, channels = image.shape
            if channels == 4:
                image = image[:, :, :3]
            elif channels != 3:
                raise ValueError("expected 3 (RGB) or 4 (RGBA) channels, got %d" % channels)
            pixels = image.reshape(-1, 3)
            return pixels, rows, cols
        """),),
        # one channel at a time, stacked as columns
        (_body("""
            img = np.asarray(image)
            if img.ndim == 3 and img.shape[-1] in [3, 4]:
                rows, cols = img.shape[0], img.shape[1]
                pixels = np.stack([img[..., channel].ravel() for channel in range(3)], axis=1)
                return pixels, rows, cols
            raise ValueError("image must have shape (rows, cols, 3) or (rows, cols, 4), not " + str(img.shape))
        """),),
        # unpacking the shape in a try block; channels first, then transposed
        (_body("""
            image = np.asarray(image)
            try:
                rows, cols, channels = image.shape
            except ValueError:
                raise ValueError(f"image should be 3-dimensional (rows, cols, channels), not {image.shape}") from None
            if channels not in (3, 4):
                raise ValueError(f"image should have 3 or 4 channels, got {channels}")
            channels_first = image[..., :3].transpose(2, 0, 1)
            return channels_first.reshape(3, rows * cols).T, rows, cols
        """),),
    ),
    "image_compression": (
        # fit_predict and np.take
        (_body("""
            kmeans_model = KMeans(n_clusters=size, n_init=1, random_state=random_state)
            labels = kmeans_model.fit_predict(np.asarray(pixels, dtype=np.float64))
            palette = np.rint(kmeans_model.cluster_centers_).clip(0, 255).astype("uint8")
            quantized = np.take(palette, labels, axis=0)
            return quantized, palette
        """),),
        # the palette filled one colour at a time, predict for the pixels
        (_body("""
            data = np.asarray(pixels).astype(float)
            km = KMeans(n_clusters=size, n_init=1, random_state=random_state)
            km.fit(data)
            palette = np.empty((size, 3), dtype=np.uint8)
            for j, centre in enumerate(km.cluster_centers_):
                palette[j] = np.clip(np.rint(centre), 0, 255)
            quantized = palette[km.predict(data)]
            return quantized, palette
        """),),
        # np.minimum / np.maximum, and the quantized image group by group
        (_body("""
            model = KMeans(n_clusters=size, n_init=1, random_state=random_state)
            model.fit(np.float64(pixels))
            palette = np.rint(model.cluster_centers_)
            palette = np.minimum(np.maximum(palette, 0), 255).astype(np.uint8)
            quantized = np.zeros((len(pixels), 3), dtype=np.uint8)
            for j in range(size):
                quantized[model.labels_ == j] = palette[j]
            return quantized, palette
        """),),
    ),
    "compression_functions": (
        # bit_length; a dict of colour tuples; os.stat
        (
            _body("""
                k = int(k)
                if k <= 1:
                    raise ValueError("k must be at least 2")
                bits = (k - 1).bit_length()
                return 24 / bits
            """),
            _body("""
                palette = np.asarray(palette, dtype=np.uint8)
                image = np.asarray(quantized_image, dtype=np.uint8)
                rows, cols = image.shape[:2]
                lookup = {tuple(colour): index for index, colour in enumerate(palette.tolist())}
                flat = [lookup[tuple(pixel)] for pixel in image.reshape(-1, 3).tolist()]
                indices = np.array(flat, dtype=np.uint8).reshape(rows, cols)
                picture = Image.fromarray(indices, mode="P")
                picture.putpalette(palette.flatten().tolist())
                picture.save(path)
            """),
            _body("""
                original = os.stat(original_path).st_size
                compressed = os.stat(compressed_path).st_size
                return original / compressed
            """),
        ),
        # a while loop over powers of two; a broadcast comparison; pathlib
        (
            _body("""
                if not k >= 2:
                    raise ValueError(f"need k >= 2 colours, got {k}")
                bits = 0
                while 2 ** bits < k:
                    bits += 1
                return 24 / bits
            """),
            _body("""
                image = np.asarray(quantized_image)
                colours = np.asarray(palette, dtype=np.uint8)
                matches = np.all(image[:, :, None, :] == colours[None, None, :, :], axis=-1)
                indices = matches.argmax(axis=-1).astype(np.uint8)
                img = Image.frombytes("P", (image.shape[1], image.shape[0]), indices.tobytes())
                img.putpalette(colours.reshape(-1).tolist())
                img.save(path, "PNG")
            """),
            _body("""
                from pathlib import Path

                return Path(original_path).stat().st_size / Path(compressed_path).stat().st_size
            """),
        ),
        # np.log2; np.unique with return_inverse; reading the files
        (
            _body("""
                if k < 2:
                    raise ValueError("bits_per_pixel_ratio: a palette has at least two colours")
                bits_needed = int(np.ceil(np.log2(k)))
                return 24.0 / bits_needed
            """),
            _body("""
                palette = np.asarray(palette, dtype=np.uint8)
                height, width = np.shape(quantized_image)[:2]
                pixels = np.asarray(quantized_image, dtype=np.uint8).reshape(-1, 3)
                colours, inverse = np.unique(pixels, axis=0, return_inverse=True)
                positions = []
                for colour in colours:
                    positions.append(int(np.flatnonzero((palette == colour).all(axis=1))[0]))
                indices = np.asarray(positions, dtype=np.uint8)[inverse.reshape(-1)]
                out = Image.fromarray(indices.reshape(height, width))
                out.putpalette(palette.ravel().tolist())
                out.save(path, format="PNG")
            """),
            _body("""
                with open(original_path, "rb") as original_file:
                    original_bytes = len(original_file.read())
                with open(compressed_path, "rb") as compressed_file:
                    compressed_bytes = len(compressed_file.read())
                return original_bytes / compressed_bytes
            """),
        ),
    ),
    "mnist_load_data": (
        # a list comprehension unpacked into four names
        (_body("""
            with np.load(file, allow_pickle=False) as data:
                x_train, y_train, x_test, y_test = [data[key] for key in ("x_train", "y_train", "x_test", "y_test")]
            return (x_train, y_train), (x_test, y_test)
        """),),
        # try / finally instead of with
        (_body("""
            archive = np.load(file, allow_pickle=False)
            try:
                x_train = archive["x_train"]
                y_train = archive["y_train"]
                x_test = archive["x_test"]
                y_test = archive["y_test"]
            finally:
                archive.close()
            return (x_train, y_train), (x_test, y_test)
        """),),
        # a loop over the two parts
        (_body("""
            loaded = []
            with np.load(file, allow_pickle=False) as npz:
                for part in ("train", "test"):
                    loaded.append((npz["x_" + part], npz["y_" + part]))
            return tuple(loaded)
        """),),
    ),
    "preprocess_digits": (
        # convert, divide, then reshape
        (_body("""
            images = np.asarray(x, dtype=np.float32)
            return (images / 255.0).reshape(-1, 28 * 28)
        """),),
        # np.divide with a dtype
        (_body("""
            n_images = np.shape(x)[0]
            flat = np.reshape(x, (n_images, 784))
            return np.divide(flat, 255, dtype=np.float32)
        """),),
        # one image at a time
        (_body("""
            vectors = np.array([image.flatten() for image in x], dtype=np.float32)
            vectors /= 255
            return vectors.reshape(len(x), 784)
        """),),
    ),
    "retrieve_info": (
        # collections.Counter per cluster
        (_body("""
            from collections import Counter

            votes = {}
            for cluster, label in zip(np.asarray(cluster_labels).tolist(), np.asarray(y).tolist()):
                votes.setdefault(cluster, Counter())[label] += 1
            most_common = lambda tally: min(tally, key=lambda digit: (-tally[digit], digit))
            return {cluster: most_common(counter) for cluster, counter in votes.items()}
        """),),
        # np.unique with return_counts in a loop
        (_body("""
            cluster_labels = np.asarray(cluster_labels)
            y = np.asarray(y)
            reference_labels = {}
            for cluster in np.unique(cluster_labels):
                labels_here, counts = np.unique(y[cluster_labels == cluster], return_counts=True)
                reference_labels[int(cluster)] = int(labels_here[np.argmax(counts)])
            return reference_labels
        """),),
        # a cluster x label table with np.add.at
        (_body("""
            clusters = np.asarray(cluster_labels, dtype=int)
            labels = np.asarray(y, dtype=int)
            table = np.zeros((clusters.max() + 1, labels.max() + 1), dtype=int)
            np.add.at(table, (clusters, labels), 1)
            present = np.flatnonzero(table.sum(axis=1))
            return dict(zip(present.tolist(), table[present].argmax(axis=1).tolist()))
        """),),
    ),
    "infer_labels": (
        # np.vectorize over dict.get
        (_body("""
            lookup = np.vectorize(lambda cluster: reference_labels.get(int(cluster), -1), otypes=[np.int64])
            return lookup(np.asarray(cluster_labels))
        """),),
        # a lookup table filled by fancy indexing
        (_body("""
            cluster_labels = np.asarray(cluster_labels)
            n_clusters = max(max(reference_labels, default=0), cluster_labels.max(initial=0)) + 1
            table = -np.ones(n_clusters, dtype=int)
            table[list(reference_labels.keys())] = list(reference_labels.values())
            return table[cluster_labels]
        """),),
        # a mask per named cluster
        (_body("""
            clusters = np.asarray(cluster_labels)
            predicted = np.full(clusters.shape, -1, dtype=np.int64)
            for cluster, digit in reference_labels.items():
                predicted[clusters == cluster] = digit
            return predicted
        """),),
    ),
    "evaluate_kmeans_classifier": (
        # count_nonzero
        (_body("""
            clusterer = MiniBatchKMeans(n_clusters=k, batch_size=1024, n_init=1, random_state=random_state)
            clusterer.fit(X_train)
            reference_labels = retrieve_info(clusterer.labels_, y_train)
            test_clusters = clusterer.predict(X_test)
            predictions = infer_labels(test_clusters, reference_labels)
            correct = np.count_nonzero(predictions == np.asarray(y_test))
            accuracy = correct / len(y_test)
            return accuracy, clusterer, reference_labels
        """),),
        # fit_predict, and a loop counting the hits
        (_body("""
            model = MiniBatchKMeans(n_clusters=k, batch_size=1024, n_init=1, random_state=random_state)
            train_clusters = model.fit_predict(X_train)
            names = retrieve_info(train_clusters, y_train)
            hits = 0
            for guess, truth in zip(infer_labels(model.predict(X_test), names), y_test):
                hits += int(guess == truth)
            return hits / len(y_test), model, names
        """),),
        # sklearn.metrics.accuracy_score
        (_body("""
            from sklearn.metrics import accuracy_score

            model = MiniBatchKMeans(n_clusters=k, batch_size=1024, n_init=1, random_state=random_state).fit(X_train)
            reference_labels = retrieve_info(model.predict(X_train), y_train)
            accuracy = accuracy_score(y_test, infer_labels(model.predict(X_test), reference_labels))
            return float(accuracy), model, reference_labels
        """),),
    ),
    "prepare_digit_image": (
        # crop with np.any, paste in the middle, then shift the centre of mass with ndimage.shift
        (_body("""
            pixels = np.asarray(Image.open(path).convert("L"), dtype=float) / 255
            if np.median(pixels) > 0.5:
                pixels = 1.0 - pixels
            low, high = np.median(pixels), pixels.max()
            if high - low < 1e-6:
                raise ValueError(f"{path} looks blank: there is no digit to read")
            pixels = np.clip((pixels - low) / (high - low), 0.0, 1.0)
            rows = np.where(np.any(pixels > 0.5, axis=1))[0]
            cols = np.where(np.any(pixels > 0.5, axis=0))[0]
            digit = pixels[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
            h, w = digit.shape
            if h >= w:
                new_size = (max(1, int(round(20 * w / h))), 20)
            else:
                new_size = (20, max(1, int(round(20 * h / w))))
            resized = Image.fromarray((digit * 255).round().astype(np.uint8)).resize(new_size, Image.LANCZOS)
            digit = np.asarray(resized, dtype=float) / 255
            canvas = np.zeros((28, 28))
            top = (28 - digit.shape[0]) // 2
            left = (28 - digit.shape[1]) // 2
            canvas[top:top + digit.shape[0], left:left + digit.shape[1]] = digit
            cy, cx = ndimage.center_of_mass(canvas)
            canvas = ndimage.shift(canvas, (round(14 - cy), round(14 - cx)), order=0, mode="constant", cval=0.0)
            return canvas.astype(np.float32).reshape(1, -1)
        """),),
        # ImageOps, np.argwhere for the box, np.pad to place it
        (_body("""
            from PIL import ImageOps

            img = np.array(ImageOps.grayscale(Image.open(path)), dtype=np.float64) / 255.0
            if np.median(img) > 0.5:
                img = 1 - img
            img = img - np.median(img)
            peak = img.max()
            if not peak > 1e-6:
                raise ValueError("no digit in " + str(path) + ": the image is uniform")
            img = np.clip(img / peak, 0, 1)
            found = np.argwhere(img > 0.5)
            (r0, c0), (r1, c1) = found.min(axis=0), found.max(axis=0) + 1
            img = img[r0:r1, c0:c1]
            factor = 20.0 / max(img.shape)
            width = max(1, int(round(img.shape[1] * factor)))
            height = max(1, int(round(img.shape[0] * factor)))
            small = Image.fromarray(np.uint8(img * 255 + 0.5)).resize((width, height), resample=Image.LANCZOS)
            small = np.asarray(small) / 255.0
            com_r, com_c = ndimage.center_of_mass(small)
            pad_top = min(max(int(round(14 - com_r)), 0), 28 - height)
            pad_left = min(max(int(round(14 - com_c)), 0), 28 - width)
            result = np.pad(small, ((pad_top, 28 - height - pad_top), (pad_left, 28 - width - pad_left)))
            return result.astype(np.float32).reshape(1, 784)
        """),),
        # Pillow all the way: getbbox, crop, resize, paste
        (_body("""
            gray = np.asarray(Image.open(path).convert("L"), dtype=float) / 255
            gray = 1 - gray if np.median(gray) > 0.5 else gray
            background = np.median(gray)
            if np.isclose(gray.max(), background):
                raise ValueError(f"cannot find a digit in {path}: every pixel has the same gray level")
            stretched = np.clip((gray - background) / (gray.max() - background), 0, 1)
            picture = Image.fromarray(np.uint8(np.round(stretched * 255)))
            box = Image.fromarray(np.uint8(stretched > 0.5) * 255).getbbox()
            picture = picture.crop(box)
            longest = max(picture.size)
            new_width = max(1, round(picture.width * 20 / longest))
            new_height = max(1, round(picture.height * 20 / longest))
            picture = picture.resize((new_width, new_height), Image.LANCZOS)
            mass_row, mass_col = ndimage.center_of_mass(np.asarray(picture, dtype=float))
            x0 = int(np.clip(round(14 - mass_col), 0, 28 - new_width))
            y0 = int(np.clip(round(14 - mass_row), 0, 28 - new_height))
            frame = Image.new("L", (28, 28), 0)
            frame.paste(picture, (x0, y0))
            return (np.asarray(frame, dtype=np.float32) / 255).reshape(1, 784)
        """),),
    ),
}


# ---------------------------------------------------------------------------
# Written answers: three sentence slots, four phrasings each
# ---------------------------------------------------------------------------

#: question id -> (slot 1, slot 2, slot 3); a slot is a tuple of N_PHRASINGS phrasings
#: of the same content. Each phrasing is one or more whole sentences ending with "."
#: (and ". " appears nowhere else, so that answers split into sentences).
WRITTEN = {
    "question1": (
        (
            "$k$-means only ever goes downhill: every step lowers $J^{\\rm clust}$ or leaves it unchanged, so it "
            "stops at a local minimum, and which local minimum it reaches depends on the starting representatives.",
            "Neither the partition step nor the update step can increase $J^{\\rm clust}$, so the algorithm ends in "
            "the first clustering it cannot improve, a local minimum that depends on where it started (two starting "
            "representatives inside one true group split that group, while two true groups end up sharing one).",
            "The algorithm is greedy and finds only a local minimum of $J^{\\rm clust}$: from a bad start it can get "
            "stuck with one real cluster cut in two and two other clusters merged, and no single step fixes that.",
            "Different starts lead to different final clusterings because each iteration can only decrease the "
            "objective, which traps the method in whichever local minimum lies nearest to the initial representatives.",
        ),
        (
            "To get a good clustering, run $k$-means several times from different random starts and keep the run "
            "with the smallest $J^{\\rm clust}$.",
            "A practical remedy is to repeat the algorithm with many initialisations and choose the result whose "
            "final objective is lowest.",
            "Several runs help: compare their final values of $J^{\\rm clust}$ and keep the best one, as the cell "
            "above does with 20 seeds.",
            "With multiple runs we simply pick the clustering that ends with the least mean squared distance, since a "
            "lower $J^{\\rm clust}$ means a tighter clustering.",
        ),
        (
            "Scikit-learn does exactly this with `n_init` runs, and by default it chooses the starts with k-means++: "
            "the first representative is a random data point, and each next one is drawn with probability "
            "proportional to its squared distance from the nearest representative already chosen, which spreads the "
            "starts out.",
            "In scikit-learn the parameter `n_init` sets how many runs are made (the one with the lowest inertia is "
            "kept), and the default `init` k-means++ picks the first centre uniformly at random and every further "
            "centre with probability proportional to the squared distance to its closest centre so far.",
            "The default k-means++ initialisation in scikit-learn starts from one random point and then adds points "
            "one at a time, favouring points far from the representatives chosen so far (with probability "
            "proportional to the squared distance), and `n_init` repeats the whole run several times and keeps the "
            "lowest $J^{\\rm clust}$.",
            "By default `KMeans` seeds the representatives with k-means++, which samples each new representative "
            "with probability proportional to its squared distance to the nearest existing one so that the starts "
            "are spread over the data; it then runs the algorithm `n_init` times and returns the run with the "
            "smallest inertia.",
        ),
    ),
    "question2": (
        (
            "I would choose $k$ between 16 and 32: the PSNR is then above about 30 dB and the cat looks like the "
            "original, while with fewer colours visible bands appear in the smooth fur and background.",
            "Around $k = 32$ seems best to me, because the SSIM is close to 1 and the PSNR passes 30 dB, and going "
            "higher makes the file larger without a difference the eye can see.",
            "A palette of 16 colours is a good compromise: below it the smooth areas show false contours, and above "
            "it the quality curve flattens while the file keeps growing.",
            "For this picture $k = 16$ to $32$ is enough, since that is where the PSNR crosses roughly 30 dB and the "
            "compressed cat is hard to tell apart from the original.",
        ),
        (
            "The file shrinks by a different factor than $24 / \\lceil \\log_2 k \\rceil$ because PNG also compresses "
            "the index image losslessly, and long runs of equal indices compress much better than noisy regions.",
            "The ratio of the file sizes is not the ratio of bits per pixel, since PNG applies lossless compression "
            "(filtering and deflate) to the palette indices, which works well on flat regions and poorly on noise.",
            "One reason is that a palette PNG does not store raw indices: it deflates them, so how much it saves "
            "depends on how repetitive the picture is.",
            "PNG compresses the pixel indices losslessly on top of the palette, so areas of a single colour cost "
            "almost nothing while textured areas compress much less.",
        ),
        (
            "The file also holds the palette and headers, and the original `cat.png` was itself compressed, so it "
            "never took 24 raw bits per pixel.",
            "Besides, the original PNG is already compressed rather than stored at 24 bits per pixel, and the new "
            "file adds a palette and a header of its own.",
            "Moreover, the comparison is with a compressed original, not with raw 24-bit pixels, and the fixed cost "
            "of the palette and the headers matters for a small picture.",
            "The original file was compressed too, so its size is not 24 bits times the number of pixels, and every "
            "PNG also carries headers and, here, the palette.",
        ),
    ),
    "question3": (
        (
            "Each digit is written in many styles (slanted or upright, open or closed 4s, 7s with or without a bar), "
            "and pixel by pixel these styles differ more from each other than some different digits do, so with more "
            "clusters each style gets its own representative, as the grid of representatives shows.",
            "A single digit comes in several shapes, and the representatives above show several clusters for the "
            "same digit (a slanted 1 and an upright 1, for instance), because in pixel space two ways of writing a 4 "
            "can be farther apart than a 4 and a 9.",
            "With only ten clusters one representative has to stand for every way of writing a digit, but the "
            "handwriting styles form separate groups in pixel space, and extra clusters let the model capture each "
            "style, which is why several representatives in the grid show the same digit.",
            "The accuracy keeps rising because the clusters do not correspond to digits but to writing styles: "
            "thick and thin strokes, slants and different shapes of the same digit each get a representative once "
            "$k$ is large enough.",
        ),
        (
            "$J^{\\rm clust}$ always decreases as $k$ grows, down to 0 when every training image is its own cluster.",
            "As $k$ increases the clustering objective keeps going down, and it reaches zero when there are as many "
            "clusters as images.",
            "More representatives always lower $J^{\\rm clust}$ (each image is closer to its nearest one), and with "
            "one cluster per image it becomes exactly 0.",
            "The objective is a decreasing function of the number of clusters and vanishes in the extreme case "
            "$k = N$, where each image is its own representative.",
        ),
        (
            "A small $J^{\\rm clust}$ alone is therefore not a reason to take a huge $k$: each cluster would then be "
            "named by a single training image, which overfits, costs time and memory, and no longer summarises the "
            "data.",
            "So a tiny objective does not mean a better model: with very many clusters each name rests on one or two "
            "training images, the model memorises the training set instead of generalising, and it becomes slow and "
            "large.",
            "That is why we should not choose $k$ by $J^{\\rm clust}$ alone, since at the extreme the classifier is "
            "just a nearest-neighbour lookup on the training set, with clusters that no longer summarise anything "
            "and a much higher cost in time and memory.",
            "Choosing the $k$ with the smallest objective would thus always pick the largest $k$, which overfits the "
            "training labels, makes predictions expensive, and defeats the purpose of clustering, namely describing "
            "the data with a few representatives.",
        ),
    ),
}

#: Words a plagiarist swaps when rewording a written answer (only outside $math$ and `code`).
SYNONYMS = {
    "because": "as", "several": "multiple", "multiple": "several", "smallest": "lowest", "lowest": "smallest",
    "choose": "pick", "pick": "choose", "picks": "selects", "chooses": "selects", "picture": "image",
    "keep": "retain", "different": "distinct", "large": "big", "larger": "bigger", "smooth": "even",
    "visible": "noticeable", "compresses": "encodes", "always": "invariably", "decreases": "drops",
    "grows": "increases", "increases": "grows", "shows": "displays", "show": "display", "good": "decent",
    "best": "optimal", "looks like": "resembles", "stops": "halts", "lowers": "reduces", "extra": "additional",
    "bad": "poor", "tiny": "very small", "huge": "enormous", "memory": "storage", "repeat": "rerun",
    "simply": "just", "exactly": "precisely", "therefore": "thus", "thus": "therefore", "while": "whereas",
    "rather than": "instead of", "besides": "in addition", "moreover": "furthermore", "gets": "receives",
    "ends": "finishes", "group": "cluster", "holds": "contains", "carries": "includes", "hard": "difficult",
    "stuck": "trapped", "fixes": "repairs", "help": "are useful", "expensive": "costly", "writing": "drawing",
    "applies": "uses", "flat": "uniform", "vanishes": "becomes zero", "extreme": "limiting",
}


# ---------------------------------------------------------------------------
# Notebooks of students
# ---------------------------------------------------------------------------


def solution_regions(source):
    """The ``### BEGIN SOLUTION`` regions of a cell's source.

    Returns
    -------
    list of (int, int, str)
        For each region: the index of its BEGIN line, of its END line (in
        ``source.splitlines()``) and the indentation of the BEGIN line.
    """
    regions, begin = [], None
    for index, line in enumerate(source.splitlines()):
        if notebooks.SOLUTION_BEGIN in line:
            begin = (index, line[:len(line) - len(line.lstrip())])
        elif notebooks.SOLUTION_END in line and begin is not None:
            regions.append((begin[0], index, begin[1]))
            begin = None
    return regions


def variant_source(master_source, grade_id, variant):
    """The source of a code answer cell as a student with ``variant`` of it writes it.

    Parameters
    ----------
    master_source : str
        The master's cell (template code and solution regions).
    grade_id : str
        The cell's grade id, a key of :data:`VARIANTS`.
    variant : int
        0 for the master's solution, 1 to 3 for those of :data:`VARIANTS`.

    Returns
    -------
    str
        The cell with each region's body replaced by the variant's, indented as
        the region, and without the BEGIN/END SOLUTION lines.
    """
    lines = master_source.splitlines()
    regions = solution_regions(master_source)
    if variant == 0:
        bodies = ["\n".join(line[len(indent):] if line.startswith(indent) else line.lstrip() for line in
                            lines[begin + 1:end]) for begin, end, indent in regions]
    else:
        bodies = list(VARIANTS[grade_id][variant - 1])
    if len(bodies) != len(regions):
        raise ValueError(f"{grade_id}: variant {variant} has {len(bodies)} solution bodies, the cell "
                         f"{len(regions)} regions")
    out, position = [], 0
    for (begin, end, indent), body in zip(regions, bodies):
        out += lines[position:begin]
        out += [indent + line if line.strip() else "" for line in body.splitlines()]
        position = end + 1
    out += lines[position:]
    return "\n".join(out)


def written_answer(question, choice):
    """The written answer to ``question`` made of the phrasings ``choice`` (one index per slot)."""
    slots = WRITTEN[question]
    if len(choice) != len(slots):
        raise ValueError(f"{question} has {len(slots)} sentence slots; got {len(choice)} choices")
    return " ".join(slot[index] for slot, index in zip(slots, choice))


def solved_notebook(master, code_choice, written_choice, name, student_id):
    """A copy of the master notebook as a student who made these choices hands it in.

    Parameters
    ----------
    master : nbformat.NotebookNode
        The master notebook (solution regions and hidden tests); not modified.
    code_choice : mapping
        grade id -> variant (0 = the master's solution, 1 to 3 = :data:`VARIANTS`);
        a missing code cell gets variant 0.
    written_choice : mapping
        question id -> tuple of phrasing indices, one per slot of :data:`WRITTEN`;
        a missing question gets phrasing 0 in each slot.
    name, student_id : str
        Written into the NAME / STUDENT_ID cell (:func:`coursekit.steps.demo.with_student`).

    Returns
    -------
    nbformat.NotebookNode
        The student's notebook: no BEGIN/END SOLUTION lines, composed written answers.
    """
    nb = copy.deepcopy(master)
    for cell in nb.cells:
        if not notebooks.is_solution_cell(cell):
            continue
        gid = notebooks.grade_id(cell)
        if cell.cell_type == "code":
            if gid not in VARIANTS:
                raise ValueError(f"code answer cell {gid!r} has no variants")
            cell.source = variant_source(cell.source, gid, int(code_choice.get(gid, 0)))
        elif gid in WRITTEN:
            cell.source = written_answer(gid, written_choice.get(gid, (0,) * len(WRITTEN[gid])))
    return demo.with_student(nb, name, student_id)


def _pairwise_ok(candidate, accepted, limit):
    return all(int(np.sum(candidate == other)) <= limit for other in accepted)


def _sample_spread(rng, n, size, levels, limit, what, max_attempts=200_000):
    accepted, attempts = [], 0
    while len(accepted) < n:
        attempts += 1
        if attempts > max_attempts:
            raise RuntimeError(f"could not find {n} {what} choices sharing at most {limit} of {size} "
                               f"({len(accepted)} found in {max_attempts} attempts)")
        candidate = rng.integers(0, levels, size=size)
        if _pairwise_ok(candidate, accepted, limit):
            accepted.append(candidate)
    return accepted


def independent_choices(n=30, seed=0):
    """Choices of ``n`` independent students, deterministic for a seed.

    Any two students use the same variant in at most :data:`MAX_SHARED_CODE`
    of the 13 code cells and the same phrasing in at most
    :data:`MAX_SHARED_WRITTEN` of the 9 written slots (so no two are
    identical). Found by rejection sampling with ``numpy.random.default_rng(seed)``.

    Returns
    -------
    list of (dict, dict)
        (code_choice, written_choice) per student, as :func:`solved_notebook` takes them:
        {grade id: variant} and {question id: tuple of phrasing indices}.
    """
    rng = np.random.default_rng(seed)
    n_slots = sum(len(WRITTEN[q]) for q in WRITTEN_CELLS)
    codes = _sample_spread(rng, n, len(CODE_CELLS), N_VARIANTS, MAX_SHARED_CODE, "code")
    texts = _sample_spread(rng, n, n_slots, N_PHRASINGS, MAX_SHARED_WRITTEN, "written")
    choices = []
    for code, text in zip(codes, texts):
        written, position = {}, 0
        for question in WRITTEN_CELLS:
            slots = len(WRITTEN[question])
            written[question] = tuple(int(i) for i in text[position:position + slots])
            position += slots
        choices.append(({gid: int(v) for gid, v in zip(CODE_CELLS, code)}, written))
    return choices


# ---------------------------------------------------------------------------
# Copies: renaming, reordering, rewording
# ---------------------------------------------------------------------------

#: Names a plagiarist gives to local variables (those used anywhere in the notebook are skipped).
_NEW_NAMES = (
    "result", "temp", "arr", "out", "acc", "buf", "holder", "store", "stuff", "thing", "current", "work", "info",
    "res", "tmp_arr", "mat", "vec", "box", "pile", "piece", "bucket", "chunk", "aux", "helper", "my_var", "output",
    "answer", "ret", "arr2", "mat2", "val2", "cnt", "tally", "agg", "memo", "cache", "stash", "blob", "item_",
    "thing2", "res2", "part_a", "part_b", "var1", "var2", "var3", "var4", "var5", "var6", "var7", "var8",
)
_SHORT_NAMES = ("ii", "jj", "kk", "t", "u", "v", "w", "q", "p", "m", "idx", "pos", "it", "g", "r", "s")
_COMMENTS = (
    "# compute the result", "# main part", "# do the computation", "# helper variable", "# step 1",
    "# make sure the types are right", "# go over everything", "# this is the key step", "# see lecture notes",
    "# works on the tests", "# TODO: clean this up", "# keep track of the values", "# convert first",
    "# as in the slides", "# the important bit", "# check this again later", "# done", "# needed for the tests",
)


def function_locals(func):
    """Names bound inside a function that are safe to rename: no parameters, imports, function names or globals.

    Parameters of nested functions and lambdas count as parameters, so a name
    that is one anywhere in ``func`` is never renamed.
    """
    bound, excluded = set(), set()
    for node in ast.walk(func):
        if isinstance(node, ast.arguments):
            excluded.update(a.arg for a in node.posonlyargs + node.args + node.kwonlyargs + [node.vararg, node.kwarg]
                            if a is not None)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            bound.add(node.id)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            bound.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            excluded.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            excluded.update(node.names)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node is not func:
            excluded.add(node.name)
    return bound - excluded


def _line_offsets(source):
    offsets, total = [0], 0
    for line in source.splitlines(keepends=True):
        total += len(line)
        offsets.append(total)
    return offsets


def _is_fstring(token_text):
    prefix = re.match(r"[A-Za-z]*", token_text).group(0)
    return "f" in prefix.lower()


def _rename_fstring(text, mapping):
    """``text`` (an f-string literal) with the names of its replacement fields renamed."""
    match = re.match(r"([A-Za-z]*)('''|\"\"\"|'|\")", text)
    start, quote = match.end(), match.group(2)
    body = text[start:len(text) - len(quote)]
    out, i = [], 0
    while i < len(body):
        if body[i:i + 2] in ("{{", "}}"):
            out.append(body[i:i + 2])
            i += 2
        elif body[i] == "{":
            depth, j = 0, i + 1
            while j < len(body):
                char = body[j]
                if char in "([{":
                    depth += 1
                elif char in ")]}":
                    if depth == 0:
                        break
                    depth -= 1
                elif char in "'\"":
                    j = body.index(char, j + 1)
                elif depth == 0 and (char == ":" or (char == "!" and body[j + 1:j + 2] != "=")):
                    break
                j += 1
            out.append("{" + _rename_tokens(body[i + 1:j], [(1, 10 ** 9, mapping)]))
            i = j
        else:
            out.append(body[i])
            i += 1
    return text[:start] + "".join(out) + quote


def _rename_tokens(source, spans):
    """``source`` with NAME tokens renamed; ``spans`` is a list of (first line, last line, mapping).

    A name after a dot (an attribute) or before ``=`` inside parentheses (a
    keyword argument) is left alone; names inside f-strings are renamed.
    """
    tokens = [t for t in tokenize.generate_tokens(io.StringIO(source).readline)
              if t.type not in (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT,
                                tokenize.DEDENT, tokenize.ENDMARKER)]
    offsets = _line_offsets(source)
    brackets, edits = [], []
    for index, token in enumerate(tokens):
        mapping = next((m for first, last, m in spans if first <= token.start[0] <= last), None)
        if token.type == tokenize.OP and token.string in "([{":
            brackets.append(token.string)
        elif token.type == tokenize.OP and token.string in ")]}" and brackets:
            brackets.pop()
        if mapping is None:
            continue
        replacement = None
        if token.type == tokenize.NAME and token.string in mapping:
            before = tokens[index - 1].string if index else ""
            after = tokens[index + 1].string if index + 1 < len(tokens) else ""
            if before != "." and not (after == "=" and brackets and brackets[-1] == "("):
                replacement = mapping[token.string]
        elif token.type == tokenize.STRING and _is_fstring(token.string):
            replacement = _rename_fstring(token.string, mapping)
        if replacement is not None and replacement != token.string:
            start = offsets[token.start[0] - 1] + token.start[1]
            end = offsets[token.end[0] - 1] + token.end[1]
            edits.append((start, end, replacement))
    for start, end, replacement in reversed(edits):
        source = source[:start] + replacement + source[end:]
    return source


class _Renamer(ast.NodeTransformer):
    """Applies a rename mapping to the Name nodes (and except names) of a tree, for checking."""

    def __init__(self, mapping):
        self.mapping = mapping

    def visit_Name(self, node):  # noqa: N802 (ast's naming)
        node.id = self.mapping.get(node.id, node.id)
        return node

    def visit_ExceptHandler(self, node):  # noqa: N802
        if node.name:
            node.name = self.mapping.get(node.name, node.name)
        self.generic_visit(node)
        return node


def _new_names(names, forbidden, rng):
    """A consistent mapping of ``names`` to plausible new names, none of them in ``forbidden``."""
    long_pool = [name for name in _NEW_NAMES if name not in forbidden]
    short_pool = [name for name in _SHORT_NAMES if name not in forbidden]
    rng.shuffle(long_pool)
    rng.shuffle(short_pool)
    mapping, counter = {}, 0
    for name in sorted(names):
        pool = short_pool if len(name) <= 2 and short_pool else long_pool
        if pool:
            new = pool.pop()
        else:
            counter += 1
            while f"value{counter}" in forbidden:
                counter += 1
            new = f"value{counter}"
        mapping[name] = new
        forbidden.add(new)
    return mapping


def _string_interior_lines(source):
    """Line numbers (1-based) inside multi-line strings, after their first line."""
    inside = set()
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.STRING and token.end[0] > token.start[0]:
            inside.update(range(token.start[0] + 1, token.end[0] + 1))
    return inside


def _restyled(source, rng):
    """``source`` with comments added and blank lines changed inside its top-level functions."""
    tree = ast.parse(source)
    lines = source.splitlines()
    protected = _string_interior_lines(source)
    comment_at, blank_at, drop = {}, set(), set()
    for func in tree.body:
        if not isinstance(func, ast.FunctionDef):
            continue
        body = func.body
        if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant):
            body = body[1:]  # the docstring
        if not body:
            continue
        statements, later = [], set()
        for node in ast.walk(ast.Module(body=body, type_ignores=[])):
            for field in ("body", "orelse", "finalbody", "handlers"):
                block = getattr(node, field, None)
                if isinstance(block, list):
                    statements += [s.lineno for s in block if isinstance(s, ast.stmt)]
                    later.update(s.lineno for s in block[1:] if isinstance(s, ast.stmt))
        statements = sorted(set(statements) - protected)
        for number in statements:
            if rng.random() < 0.35:
                comment_at[number] = _COMMENTS[int(rng.integers(len(_COMMENTS)))]
            if number in later and rng.random() < 0.3:
                blank_at.add(number)
        if not any(number in comment_at for number in statements):
            comment_at[statements[0]] = _COMMENTS[int(rng.integers(len(_COMMENTS)))]
        first = body[0].lineno
        drop.update(number for number in range(first, func.end_lineno + 1)
                    if number not in protected and not lines[number - 1].strip())
    out = []
    for number, line in enumerate(lines, start=1):
        if number in drop:
            continue
        indent = line[:len(line) - len(line.lstrip())]
        if number in blank_at:
            out.append("")
        if number in comment_at:
            out.append(indent + comment_at[number])
        out.append(line)
    return "\n".join(out)


def renamed_source(source, rng, forbidden=()):
    """A code cell's ``source`` with the local names of its top-level functions renamed, and restyled.

    Every local and loop variable of each function gets a new name (the same
    in the whole function); function names, parameters, imports, attributes
    and keyword arguments keep theirs. Comments are added and blank lines
    inside the functions changed. The renaming is checked against the syntax
    tree: the result is the same program up to the new names.

    Parameters
    ----------
    source : str
    rng : numpy.random.Generator
    forbidden : iterable of str
        Names the new names must avoid (those used elsewhere in the notebook).
    """
    tree = ast.parse(source)
    taken = set(forbidden) | set(re.findall(r"[A-Za-z_]\w*", source)) | set(dir(builtins)) | set(keyword.kwlist)
    spans, mappings = [], []
    for func in tree.body:
        if isinstance(func, ast.FunctionDef):
            mapping = _new_names(function_locals(func), taken, rng)
            spans.append((func.lineno, func.end_lineno, mapping))
            mappings.append(mapping)
    new_source = _rename_tokens(source, spans)
    expected = ast.parse(source)
    for func, mapping in zip([f for f in expected.body if isinstance(f, ast.FunctionDef)], mappings):
        _Renamer(mapping).visit(func)
    if ast.dump(expected) != ast.dump(ast.parse(new_source)):
        raise AssertionError("renaming changed more than the names of local variables")
    return _restyled(new_source, rng)


def reordered_functions(source, rng):
    """``source`` with its top-level functions in another order (what comes before the first one stays first)."""
    tree = ast.parse(source)
    lines = source.splitlines()
    functions = [node for node in tree.body if isinstance(node, ast.FunctionDef)]
    if len(functions) < 2:
        return source
    if any(not isinstance(node, ast.FunctionDef) for node in tree.body[tree.body.index(functions[0]):]):
        raise ValueError("only cells whose functions come last can be reordered")
    first = tree.body.index(functions[0])
    previous_end = tree.body[first - 1].end_lineno if first else 0
    chunks, head_end = [], None
    for func in functions:
        start = func.decorator_list[0].lineno if func.decorator_list else func.lineno
        # comments right above a function go with it
        while start - 1 > previous_end and lines[start - 2].lstrip().startswith("#"):
            start -= 1
        head_end = start - 1 if head_end is None else head_end
        chunks.append("\n".join(lines[start - 1:func.end_lineno]))
        previous_end = func.end_lineno
    head = "\n".join(lines[:head_end]).rstrip()
    tail = "\n".join(lines[functions[-1].end_lineno:]).strip()
    order = list(range(len(chunks)))
    while order == sorted(order):
        order = [int(i) for i in rng.permutation(len(chunks))]
    parts = ([head] if head else []) + [chunks[i] for i in order] + ([tail] if tail else [])
    return "\n\n\n".join(parts)


def _sentences(text):
    return [part for part in re.split(r"(?<=\.)\s+", text.strip()) if part]


def reworded(text, rng):
    """A written answer reworded lightly: its sentences in another order and a few words swapped for synonyms.

    Another sentence comes first, and three to five of the words of
    :data:`SYNONYMS` that occur (fewer if fewer occur) are swapped wherever
    they occur, outside ``$math$`` and backquoted code.
    """
    sentences = _sentences(text)
    order = list(range(len(sentences)))
    while len(order) > 1 and order[0] == 0:  # another sentence comes first
        order = [int(i) for i in rng.permutation(len(sentences))]
    text = " ".join(sentences[i] for i in order)
    parts = re.split(r"(\$[^$]*\$|`[^`]*`)", text)
    present = sorted(word for word in SYNONYMS
                     if any(re.search(rf"\b{re.escape(word)}\b", part, flags=re.IGNORECASE) for part in parts[::2]))
    if present:
        count = min(len(present), int(rng.integers(3, 6)))
        chosen = [present[i] for i in sorted(rng.choice(len(present), size=count, replace=False))]
        pattern = re.compile(r"\b(" + "|".join(re.escape(w) for w in sorted(chosen, key=len, reverse=True)) + r")\b",
                             flags=re.IGNORECASE)

        def swap(match):
            new = SYNONYMS[match.group(0).lower()]
            return new[0].upper() + new[1:] if match.group(0)[0].isupper() else new

        parts = [pattern.sub(swap, part) if index % 2 == 0 else part for index, part in enumerate(parts)]
    return "".join(parts)


def _notebook_names(nb):
    names = set()
    for cell in nb.cells:
        if cell.cell_type == "code":
            names.update(re.findall(r"[A-Za-z_]\w*", cell.source))
    return names


def copied(nb, how, seed=0):
    """A copy of a student's notebook disguised as a plagiarist would, still correct.

    Parameters
    ----------
    nb : nbformat.NotebookNode
        A student's notebook (:func:`solved_notebook`); not modified.
    how : {"renamed", "reordered", "written"}
        - "renamed": in every code answer cell, the local and loop variables of
          the functions renamed consistently (never function names,
          parameters, imports, attributes or keyword arguments), comments
          added and blank lines changed;
        - "reordered": renamed as well, and the functions of the
          compression_functions cell (or any answer cell with several) put in
          another order;
        - "written": the code as it is; the written answers reworded lightly
          (sentences in another order, a few words swapped for synonyms).
    seed : int
        Seed of the new names, comments, orders and synonyms.

    Returns
    -------
    nbformat.NotebookNode
        The copy (NAME and STUDENT_ID are still those of ``nb``).
    """
    if how not in COPY_METHODS:
        raise ValueError(f"how must be one of {COPY_METHODS}, got {how!r}")
    rng = np.random.default_rng(seed)
    nb = copy.deepcopy(nb)
    forbidden = _notebook_names(nb)
    for cell in nb.cells:
        if not notebooks.is_solution_cell(cell):
            continue
        if cell.cell_type == "code" and how in ("renamed", "reordered"):
            cell.source = renamed_source(cell.source, rng, forbidden)
            if how == "reordered":
                cell.source = reordered_functions(cell.source, rng)
        elif cell.cell_type == "markdown" and how == "written":
            cell.source = reworded(cell.source, rng)
    return nb


# ---------------------------------------------------------------------------
# The class
# ---------------------------------------------------------------------------

_FIRST_NAMES = (
    "Ada", "Bruno", "Chiara", "Dmitri", "Elif", "Farah", "Goran", "Hana", "Ivo", "Jana", "Kofi", "Lena", "Mateo",
    "Nadia", "Oskar", "Priya", "Quentin", "Rosa", "Sami", "Tereza", "Umar", "Vera", "Wen", "Ximena", "Yusuf",
    "Zofia", "Aiko", "Benedikt", "Carmen", "Dario", "Emeka", "Freya",
)
_LAST_NAMES = (
    "Abbott", "Bianchi", "Castillo", "Dvorak", "Eriksen", "Fischer", "Gallo", "Horvat", "Ibrahim", "Jensen",
    "Kowalski", "Lindqvist", "Moreau", "Nakamura", "Okafor", "Petrov", "Quinn", "Rossi", "Silva", "Tanaka",
    "Ueda", "Varga", "Weber", "Xu", "Yilmaz", "Zimmermann", "Almeida", "Brennan", "Costa", "Delacroix", "Engel",
    "Ferreira", "Gruber", "Haddad", "Ivanova", "Janssen", "Keller",
)
_COPIER_NAMES = {"copy_renamed": "Robin Marsh", "copy_reordered": "Kim Oduya", "copy_written": "Sasha Lind"}


def student_name(index):
    """A made-up full name for independent student ``index`` (1-based); distinct for index < 1184."""
    return f"{_FIRST_NAMES[index % len(_FIRST_NAMES)]} {_LAST_NAMES[index % len(_LAST_NAMES)]}"


def synthetic_class(master, n=30, seed=0):
    """The whole synthetic class: ``n`` independent students and the copies of :data:`COPY_SOURCES`.

    Parameters
    ----------
    master : nbformat.NotebookNode
        The master notebook; not modified.
    n : int, default=30
        Number of independent students, ``indep01`` ... (at least 11: the
        copies are made from indep03, indep07 and indep11).
    seed : int, default=0
        Seed of :func:`independent_choices` and of the copies.

    Returns
    -------
    dict
        {student id: notebook}: ``indep01`` ... then ``copy_renamed``,
        ``copy_reordered``, ``copy_written``. Which pairs are copies is
        :data:`COPIED_PAIRS`. NAME and STUDENT_ID are filled in (a copy has its
        copier's own).
    """
    needed = max(int(source[len("indep"):]) for source, _ in COPY_SOURCES.values())
    if n < needed:
        raise ValueError(f"the copies are made from indep{needed:02d}: n must be at least {needed}, got {n}")
    students = {}
    for index, (code_choice, written_choice) in enumerate(independent_choices(n, seed), start=1):
        students[f"indep{index:02d}"] = solved_notebook(
            master, code_choice, written_choice, student_name(index), f"2026{1000 + index:04d}")
    for number, (copy_id, (source, how)) in enumerate(COPY_SOURCES.items(), start=1):
        disguised = copied(students[source], how, seed=seed * 1000 + number)
        students[copy_id] = demo.with_student(disguised, _COPIER_NAMES[copy_id], f"2026{9000 + number:04d}")
    return students
