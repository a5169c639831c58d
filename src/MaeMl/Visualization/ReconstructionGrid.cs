using MaeMl.Data;
using MaeMl.Model;
using SkiaSharp;
using TorchSharp;
using static TorchSharp.torch;

namespace MaeMl.Visualization;

/// <summary>
/// The paper's reconstruction figure: one row per image with original | masked | reconstruction |
/// reconstruction with the visible patches pasted back. With norm_pix_loss the predictions are per-patch normalised;
/// they are mapped back to pixels with each visible patch's own statistics and, for removed patches, the mean
/// statistics of the visible ones (the only ones the model saw).
/// </summary>
public static class ReconstructionGrid
{
    /// <summary>The column titles of the grid, in panel order (those of <see cref="Compose"/>).</summary>
    public static readonly string[] Columns = { "original", "masked", "reconstruction", "recon + visible" };

    /// <summary>Runs the model on the images (resized to the model's size) with a seeded mask and writes the grid PNG.</summary>
    public static void Write(MaskedAutoencoderViT model, IReadOnlyList<string> imagePaths, string pngPath, int seed = 0,
        double? maskRatio = null, int cellSize = 0)
    {
        if (imagePaths.Count == 0) throw new ArgumentException("No images to reconstruct");
        var c = model.Config;
        int size = c.ImageSize, per = 3 * size * size;
        var pixels = new float[imagePaths.Count * per];
        var transform = SampleTransforms.Resize(size);
        for (int i = 0; i < imagePaths.Count; i++)
        {
            using var bmp = ImageDecoder.DecodeBitmap(imagePaths[i]);
            transform(bmp, new Random(0), pixels.AsSpan(i * per, per));
        }
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        bool wasTraining = model.training;
        model.eval();
        var imgs = tensor(pixels, new long[] { imagePaths.Count, 3, size, size });
        using var gen = new Generator((ulong)seed, torch.CPU);
        var noise = rand(new long[] { imagePaths.Count, c.NumPatches }, generator: gen);
        var output = model.Forward(imgs, noise, maskRatio);
        if (wasTraining) model.train();
        var tiles = Compose(model, imgs, output.Pred, output.Mask);          // 4 x [N, 3, H, W] normalised
        Draw(tiles, pngPath, cellSize > 0 ? cellSize : Math.Max(size, 128));
    }

    /// <summary>The four panels [N, 3, H, W] in ImageNet-normalised space.</summary>
    public static Tensor[] Compose(MaskedAutoencoderViT model, Tensor imgs, Tensor pred, Tensor mask)
    {
        var c = model.Config;
        int p = c.PatchSize;
        var target = MaskedAutoencoderViT.Patchify(imgs, p);                  // [N, L, pd]
        var predPixels = pred;
        if (c.NormPixLoss)
        {
            var (variance, mean) = var_mean(target, new long[] { -1 }, unbiased: true, keepdim: true); // [N, L, 1]
            var visible = (1 - mask).unsqueeze(-1);                           // [N, L, 1]
            var count = visible.sum(new long[] { 1 }, keepdim: true).clamp_min(1);
            var meanVis = (mean * visible).sum(new long[] { 1 }, keepdim: true) / count;   // [N, 1, 1]
            var varVis = (variance * visible).sum(new long[] { 1 }, keepdim: true) / count;
            var useMean = visible * mean + (1 - visible) * meanVis;
            var useVar = visible * variance + (1 - visible) * varVis;
            predPixels = pred * (useVar + 1e-6).sqrt() + useMean;
        }
        var recon = MaskedAutoencoderViT.Unpatchify(predPixels, p, c.InChans);
        var maskImg = MaskedAutoencoderViT.Unpatchify(mask.unsqueeze(-1).expand(-1, -1, c.PatchDim), p, c.InChans); // 1 = removed
        var gray = zeros_like(imgs);                                           // 0 in normalised space = the mean colour
        var masked = imgs * (1 - maskImg) + gray * maskImg;
        var pasted = imgs * (1 - maskImg) + recon * maskImg;
        return new[] { imgs, masked, recon, pasted };
    }

    static void Draw(Tensor[] panels, string pngPath, int cell)
    {
        long n = panels[0].shape[0], size = panels[0].shape[2];
        const int header = 24, gap = 4;
        int width = Columns.Length * (cell + gap) + gap, height = header + (int)n * (cell + gap) + gap;
        using var bitmap = new SKBitmap(width, height);
        using var canvas = new SKCanvas(bitmap);
        canvas.Clear(SKColors.White);
        using var text = PlotFont.Text(13);
        for (int col = 0; col < Columns.Length; col++) canvas.DrawText(Columns[col], gap + col * (cell + gap), 17, text);
        var mean = tensor(ImageNetNormalization.Mean).reshape(1, 3, 1, 1);
        var std = tensor(ImageNetNormalization.Std).reshape(1, 3, 1, 1);
        using var paint = new SKPaint { FilterQuality = SKFilterQuality.None };
        for (int col = 0; col < panels.Length; col++)
        {
            var rgb = (panels[col] * std + mean).clamp(0, 1).mul(255).round().to_type(ScalarType.Byte).permute(0, 2, 3, 1).contiguous(); // [N, H, W, 3]
            var bytes = rgb.data<byte>().ToArray();
            for (int i = 0; i < n; i++)
            {
                using var tile = new SKBitmap(new SKImageInfo((int)size, (int)size, SKColorType.Rgba8888, SKAlphaType.Opaque));
                var dst = tile.GetPixelSpan();
                unsafe
                {
                    byte* d = (byte*)tile.GetPixels();
                    long offset = i * size * size * 3;
                    for (long k = 0; k < size * size; k++)
                    {
                        d[4 * k] = bytes[offset + 3 * k]; d[4 * k + 1] = bytes[offset + 3 * k + 1];
                        d[4 * k + 2] = bytes[offset + 3 * k + 2]; d[4 * k + 3] = 255;
                    }
                }
                canvas.DrawBitmap(tile, new SKRect(gap + col * (cell + gap), header + i * (cell + gap), gap + col * (cell + gap) + cell, header + i * (cell + gap) + cell), paint);
            }
        }
        canvas.Flush();
        PlotFont.SavePng(bitmap, pngPath);
    }
}
