namespace MaeMl.Data;

/// <summary>
/// timm's <c>RandomErasing</c> (Zhong et al.) in 'pixel' mode, one box, on a normalised CHW image: with probability
/// <see cref="Probability"/>, up to 10 tries for a box of area fraction in [0.02, 1/3] and log-uniform aspect in
/// [0.3, 1/0.3] that fits; its pixels are replaced by per-pixel, per-channel N(0, 1) noise.
/// </summary>
/// <param name="Probability">Chance an image is erased (timm's <c>re_prob</c>; MAE fine-tuning's <c>--reprob</c>, default 0.25).</param>
/// <param name="MinArea">Smallest box area as a fraction of the image (default 0.02).</param>
/// <param name="MaxArea">Largest box area as a fraction of the image (default 1/3).</param>
/// <param name="MinAspect">Smallest height/width aspect; the largest is 1 / MinAspect (default 0.3).</param>
public sealed record RandomErasing(double Probability = 0.25, double MinArea = 0.02, double MaxArea = 1.0 / 3, double MinAspect = 0.3)
{
    /// <summary>Erases in place; <paramref name="chw"/> holds <paramref name="channels"/> planes of height x width.</summary>
    public void Apply(Span<float> chw, int channels, int height, int width, Random rng)
    {
        if (Probability <= 0 || rng.NextDouble() >= Probability) return;
        double area = (double)height * width, logMin = Math.Log(MinAspect), logMax = Math.Log(1 / MinAspect);
        for (int attempt = 0; attempt < 10; attempt++)
        {
            double target = area * (MinArea + rng.NextDouble() * (MaxArea - MinArea));
            double aspect = Math.Exp(logMin + rng.NextDouble() * (logMax - logMin));
            int h = (int)Math.Round(Math.Sqrt(target * aspect)), w = (int)Math.Round(Math.Sqrt(target / aspect));
            if (w >= width || h >= height || w <= 0 || h <= 0) continue;
            int top = rng.Next(0, height - h + 1), left = rng.Next(0, width - w + 1);
            for (int c = 0; c < channels; c++)
                for (int y = top; y < top + h; y++)
                    for (int x = left; x < left + w; x++)
                        chw[(c * height + y) * width + x] = (float)(Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble()));
            return;
        }
    }
}
