using static TorchSharp.torch;

namespace MaeMl.Detection;

/// <summary>FCOS inference: score = sqrt(sigmoid(class) x sigmoid(centerness)), boxes = location -/+ distances clipped to the
/// image, scores above the threshold, the top-K candidates, class-wise NMS, the best <see cref="DetectionConfig.MaxDetections"/>.</summary>
public static class FcosPostprocess
{
    public static List<DetectedBox[]> Decode(DetectionModel model, FcosOutput output)
    {
        var c = model.Config;
        var (xs, ys, _) = model.Locations;
        float size = c.Encoder.ImageSize;
        using var scope = NewDisposeScope();
        var scores = (output.ClassLogits.sigmoid() * output.Centerness.sigmoid().unsqueeze(-1)).sqrt().cpu();   // [N, A, K]
        var dist = output.Distances.cpu();
        long n = scores.shape[0], a = scores.shape[1], k = scores.shape[2];
        var s = scores.data<float>().ToArray();
        var d = dist.data<float>().ToArray();
        var result = new List<DetectedBox[]>();
        for (long b = 0; b < n; b++)
        {
            var candidates = new List<DetectedBox>();
            for (long i = 0; i < a; i++)
            for (long j = 0; j < k; j++)
            {
                float score = s[(b * a + i) * k + j];
                if (score <= c.ScoreThreshold) continue;
                long o = (b * a + i) * 4;
                candidates.Add(new DetectedBox(Math.Clamp(xs[i] - d[o], 0, size), Math.Clamp(ys[i] - d[o + 1], 0, size),
                    Math.Clamp(xs[i] + d[o + 2], 0, size), Math.Clamp(ys[i] + d[o + 3], 0, size), (int)j, score));
            }
            var top = candidates.OrderByDescending(x => x.Score).Take(c.PreNmsTopK);
            result.Add(BoxOps.Nms(top, c.NmsIoU, c.MaxDetections).ToArray());
        }
        return result;
    }
}
