using MaeMl.Model;
using SkiaSharp;

namespace MaeMl.Tests;

/// <summary>Tiny generated detection / segmentation sets: one bright square per image on a dark background.</summary>
public static class DenseTestData
{
    public static MaeConfig TinyEncoder(int imageSize = 32) => TestModels.Tiny with { ImageSize = imageSize, PatchSize = 8 };

    /// <summary>Writes images img*.png, YOLO labels (class 0 = square, 1 = circle) and grey masks (0 background, 1 square, 2 circle).</summary>
    public static (string Images, string Labels, string Masks) Write(string dir, int count, int size = 48, int seed = 0)
    {
        var rng = new Random(seed);
        string images = Path.Combine(dir, "images"), labels = Path.Combine(dir, "labels"), masks = Path.Combine(dir, "masks");
        foreach (var d in new[] { images, labels, masks }) Directory.CreateDirectory(d);
        for (int i = 0; i < count; i++)
        {
            int cls = i % 2, side = size / 4 + rng.Next(size / 4);
            int x0 = rng.Next(size - side), y0 = rng.Next(size - side);
            using var bitmap = new SKBitmap(size, size, SKColorType.Rgba8888, SKAlphaType.Premul);
            using (var canvas = new SKCanvas(bitmap))
            {
                canvas.Clear(new SKColor(30, 30, 40));
                using var paint = new SKPaint { Color = cls == 0 ? new SKColor(240, 200, 40) : new SKColor(40, 200, 240) };
                canvas.DrawRect(x0, y0, side, side, paint);
            }
            Save(bitmap, Path.Combine(images, $"img{i:D3}.png"));
            File.WriteAllText(Path.Combine(labels, $"img{i:D3}.txt"),
                FormattableString.Invariant($"{cls} {(x0 + side / 2.0) / size} {(y0 + side / 2.0) / size} {(double)side / size} {(double)side / size}\n"));
            using var mask = new SKBitmap(new SKImageInfo(size, size, SKColorType.Gray8, SKAlphaType.Opaque));
            var rows = new byte[mask.RowBytes * size];
            for (int y = 0; y < size; y++)
            for (int x = 0; x < size; x++)
                rows[y * mask.RowBytes + x] = (byte)(x >= x0 && x < x0 + side && y >= y0 && y < y0 + side ? cls + 1 : 0);
            System.Runtime.InteropServices.Marshal.Copy(rows, 0, mask.GetPixels(), rows.Length);
            Save(mask, Path.Combine(masks, $"img{i:D3}.png"));
        }
        return (images, labels, masks);
    }

    /// <summary>One detection image of the ML.NET layout: file, class name of each box, x0 y0 x1 y1 per box in its pixels.</summary>
    public sealed record BoxImage(string Path, int Width, int Height, string[] Names, float[] Boxes);

    /// <summary>Writes <paramref name="count"/> PNGs of random non-square sizes (<paramref name="minSide"/>..<paramref name="maxSide"/>),
    /// each with one or two filled rectangles: class <c>classes[i % n]</c> has its own colour.</summary>
    public static List<BoxImage> WriteBoxImages(string dir, int count, string[] classes, int minSide = 24, int maxSide = 80, int seed = 0)
    {
        Directory.CreateDirectory(dir);
        var rng = new Random(seed);
        var colors = new[] { new SKColor(240, 200, 40), new SKColor(40, 200, 240), new SKColor(230, 60, 200), new SKColor(90, 240, 90) };
        var result = new List<BoxImage>();
        for (int i = 0; i < count; i++)
        {
            int w = rng.Next(minSide, maxSide + 1), h = rng.Next(minSide, maxSide + 1);
            if (w == h) w++;
            using var bitmap = new SKBitmap(w, h, SKColorType.Rgba8888, SKAlphaType.Premul);
            using var canvas = new SKCanvas(bitmap);
            canvas.Clear(new SKColor(30, 30, 40));
            var names = new List<string>();
            var boxes = new List<float>();
            for (int j = 0; j < 1 + i % 2; j++)
            {
                int cls = (i + j) % classes.Length;
                int bw = w / 4 + rng.Next(w / 4), bh = h / 4 + rng.Next(h / 4), x0 = rng.Next(w - bw), y0 = rng.Next(h - bh);
                using var paint = new SKPaint { Color = colors[cls % colors.Length] };
                canvas.DrawRect(x0, y0, bw, bh, paint);
                names.Add(classes[cls]);
                boxes.AddRange([x0, y0, x0 + bw, y0 + bh]);
            }
            var path = System.IO.Path.Combine(dir, $"box{i:D3}.png");
            Save(bitmap, path);
            result.Add(new BoxImage(path, w, h, names.ToArray(), boxes.ToArray()));
        }
        return result;
    }

    /// <summary>A copy of an image with every pixel repeated <paramref name="fx"/> x <paramref name="fy"/> times (nearest-neighbour
    /// upscaling: stretched to any size, it gives the same pixels as the original), its boxes scaled along.</summary>
    public static BoxImage Upscaled(BoxImage image, int fx, int fy, string path)
    {
        using var source = SKBitmap.Decode(image.Path);
        using var big = new SKBitmap(source.Width * fx, source.Height * fy, SKColorType.Rgba8888, SKAlphaType.Premul);
        for (int y = 0; y < big.Height; y++)
        for (int x = 0; x < big.Width; x++) big.SetPixel(x, y, source.GetPixel(x / fx, y / fy));
        Save(big, path);
        return new BoxImage(path, big.Width, big.Height, image.Names, image.Boxes.Select((v, i) => v * (i % 2 == 0 ? fx : fy)).ToArray());
    }

    static void Save(SKBitmap bitmap, string path)
    {
        using var image = SKImage.FromBitmap(bitmap);
        using var data = image.Encode(SKEncodedImageFormat.Png, 100);
        File.WriteAllBytes(path, data.ToArray());
    }
}
