using static TorchSharp.torch;

namespace MaeMl.Detection;

/// <summary>
/// FCOS inference, the same steps as the graph <see cref="DetectionOnnxExporter"/> writes (so the AP measured here is the AP
/// of the exported model): score = sqrt(sigmoid(class) x sigmoid(centerness)) of every (location, class); boxes = location
/// -/+ distances clipped to the S x S input; the candidates are the scores above <see cref="DetectionConfig.ScoreThreshold"/>,
/// the best <see cref="DetectionConfig.PreNmsTopK"/> of them by score (all classes together, ties in location-major order);
/// class-wise greedy NMS (<see cref="BoxOps.Nms"/>, IoU above <see cref="DetectionConfig.NmsIoU"/> suppresses); the best
/// <see cref="DetectionConfig.MaxDetections"/> kept boxes of the image, all classes together, by descending score. Boxes are in
/// model pixels, or in pixels of the original image when its size is given (the S x S input was the image stretched to S x S:
/// x * width / S, y * height / S).
/// </summary>
public static class FcosPostprocess
{
    /// <summary>Detections of each image of a batch; <paramref name="imageSizes"/> (width, height per image) maps the boxes from
    /// model pixels to pixels of the original (stretched) images.</summary>
    public static List<DetectedBox[]> Decode(DetectionModel model, FcosOutput output, IReadOnlyList<(int Width, int Height)>? imageSizes = null)
    {
        var c = model.Config;
        var (xs, ys, _) = model.Locations;
        float size = c.Encoder.ImageSize;
        using var scope = NewDisposeScope();
        var scores = (output.ClassLogits.sigmoid() * output.Centerness.sigmoid().unsqueeze(-1)).sqrt().cpu();   // [N, A, K]
        var dist = output.Distances.cpu();
        long n = scores.shape[0], a = scores.shape[1], k = scores.shape[2];
        if (imageSizes is not null && imageSizes.Count != n) throw new ArgumentException($"{imageSizes.Count} image sizes for a batch of {n}");
        var s = scores.data<float>().ToArray();
        var d = dist.data<float>().ToArray();
        var boxes = new float[a * 4];
        var result = new List<DetectedBox[]>();
        for (long b = 0; b < n; b++)
        {
            for (long i = 0; i < a; i++)
            {
                long o = (b * a + i) * 4;
                boxes[4 * i] = Math.Clamp(xs[i] - d[o], 0, size);
                boxes[4 * i + 1] = Math.Clamp(ys[i] - d[o + 1], 0, size);
                boxes[4 * i + 2] = Math.Clamp(xs[i] + d[o + 2], 0, size);
                boxes[4 * i + 3] = Math.Clamp(ys[i] + d[o + 3], 0, size);
            }
            var (sx, sy) = imageSizes is null ? (1f, 1f) : (imageSizes[(int)b].Width / size, imageSizes[(int)b].Height / size);
            result.Add(Select(c, s.AsSpan((int)(b * a * k), (int)(a * k)), boxes, (int)k, sx, sy));
        }
        return result;
    }

    /// <summary>
    /// The selection of one image: <paramref name="scores"/> of every location and class, location-major
    /// (<c>scores[location * numClasses + class]</c>), <paramref name="boxes"/> x0, y0, x1, y1 of every location in model pixels;
    /// the kept boxes are returned scaled by (<paramref name="scaleX"/>, <paramref name="scaleY"/>), best first.
    /// </summary>
    public static DetectedBox[] Select(DetectionConfig config, ReadOnlySpan<float> scores, ReadOnlySpan<float> boxes, int numClasses,
        float scaleX = 1, float scaleY = 1)
    {
        if (scores.Length != boxes.Length / 4 * numClasses) throw new ArgumentException($"{scores.Length} scores for {boxes.Length / 4} boxes and {numClasses} classes");
        var candidates = new List<(int Index, float Score)>();
        for (int i = 0; i < scores.Length; i++)
            if (scores[i] > config.ScoreThreshold) candidates.Add((i, scores[i]));
        var top = new List<DetectedBox>();
        foreach (var (index, score) in candidates.OrderByDescending(x => x.Score).Take(config.PreNmsTopK))   // stable: ties keep index order
        {
            int location = index / numClasses, o = 4 * location;
            top.Add(new DetectedBox(boxes[o], boxes[o + 1], boxes[o + 2], boxes[o + 3], index % numClasses, score));
        }
        var kept = BoxOps.Nms(top, config.NmsIoU, config.MaxDetections);
        if (scaleX == 1 && scaleY == 1) return kept.ToArray();
        return kept.Select(b => b with { X0 = b.X0 * scaleX, Y0 = b.Y0 * scaleY, X1 = b.X1 * scaleX, Y1 = b.Y1 * scaleY }).ToArray();
    }
}
