using MaeMl.Checkpoints;
using MaeMl.Data;
using SkiaSharp;
using Xunit;
using MaeMl.Files;

namespace MaeMl.Tests.Data;

public class DataPipelineTests
{
    [Fact]
    public void DecoderConvertsGrayscaleAlphaAnd16BitToRgb()
    {
        var dir = TestImages.TempDir("decode");
        // grayscale
        using (var gray = new SKBitmap(new SKImageInfo(8, 8, SKColorType.Gray8, SKAlphaType.Opaque)))
        {
            gray.Erase(new SKColor(100, 100, 100));
            Save(gray, Path.Combine(dir, "gray.png"));
        }
        // half-transparent red: alpha is dropped, colour kept (PIL convert('RGB'))
        using (var rgba = new SKBitmap(new SKImageInfo(8, 8, SKColorType.Rgba8888, SKAlphaType.Unpremul)))
        {
            rgba.Erase(new SKColor(200, 10, 20, 128));
            Save(rgba, Path.Combine(dir, "alpha.png"));
        }
        File.WriteAllBytes(Path.Combine(dir, "16bit.png"), Png16Rgb(8, 8, 30 * 257, 60 * 257, 90 * 257));
        using (var b = ImageDecoder.DecodeBitmap(Path.Combine(dir, "gray.png")))
            Assert.Equal(new byte[] { 100, 100, 100 }, ImageDecoder.ToRgb(b)[..3]);
        using (var b = ImageDecoder.DecodeBitmap(Path.Combine(dir, "alpha.png")))
        {
            var rgb = ImageDecoder.ToRgb(b)[..3];
            Assert.InRange(rgb[0], 198, 202);
            Assert.InRange(rgb[1], 8, 12);
        }
        using (var b = ImageDecoder.DecodeBitmap(Path.Combine(dir, "16bit.png")))
            Assert.Equal(new byte[] { 30, 60, 90 }, ImageDecoder.ToRgb(b)[..3]);
    }

    static void Save(SKBitmap bitmap, string path)
    {
        using var image = SKImage.FromBitmap(bitmap);
        using var data = image.Encode(SKEncodedImageFormat.Png, 100);
        File.WriteAllBytes(path, data.ToArray());
    }

    /// <summary>A 16-bit-per-channel RGB PNG of one colour, written by hand (Skia does not encode 16-bit PNGs).</summary>
    static byte[] Png16Rgb(int w, int h, ushort r, ushort g, ushort b)
    {
        var raw = new MemoryStream();
        for (int y = 0; y < h; y++)
        {
            raw.WriteByte(0); // filter: none
            for (int x = 0; x < w; x++) foreach (var v in new[] { r, g, b }) { raw.WriteByte((byte)(v >> 8)); raw.WriteByte((byte)v); }
        }
        var z = new MemoryStream();
        using (var zs = new System.IO.Compression.ZLibStream(z, System.IO.Compression.CompressionLevel.Optimal, leaveOpen: true)) raw.WriteTo(zs);
        var png = new MemoryStream();
        png.Write(new byte[] { 137, 80, 78, 71, 13, 10, 26, 10 });
        void Chunk(string type, byte[] data)
        {
            var len = BitConverter.GetBytes(data.Length); Array.Reverse(len); png.Write(len);
            var body = System.Text.Encoding.ASCII.GetBytes(type).Concat(data).ToArray();
            png.Write(body);
            uint crc = 0xFFFFFFFF;
            foreach (var bt in body) { crc ^= bt; for (int k = 0; k < 8; k++) crc = (crc >> 1) ^ (0xEDB88320 & (uint)-(int)(crc & 1)); }
            var c = BitConverter.GetBytes(~crc); Array.Reverse(c); png.Write(c);
        }
        var ihdr = new byte[13];
        ihdr[3] = (byte)w; ihdr[7] = (byte)h; ihdr[8] = 16; ihdr[9] = 2; // 16-bit truecolour
        Chunk("IHDR", ihdr);
        Chunk("IDAT", z.ToArray());
        Chunk("IEND", Array.Empty<byte>());
        return png.ToArray();
    }

    [Fact]
    public void CorruptFilesGiveErrorsNamingTheFile()
    {
        var dir = TestImages.TempDir("bad");
        var path = Path.Combine(dir, "bad.jpg");
        File.WriteAllText(path, "not an image");
        var ex = Assert.Throws<ImageDecodeException>(() => ImageDecoder.DecodeBitmap(path));
        Assert.Contains(path, ex.Message);
    }

    [Fact]
    public void RandomResizedCropStaysInsideAndCoversTheRequestedAreas()
    {
        var rng = new Random(1);
        for (int i = 0; i < 500; i++)
        {
            var box = ImageTransforms.RandomResizedCropBox(64, 48, rng);
            Assert.True(box.Left >= 0 && box.Top >= 0 && box.Right <= 64 && box.Bottom <= 48);
            double area = box.Width * box.Height / (64.0 * 48);
            Assert.InRange(area, 0.15, 1.0);
        }
    }

    [Fact]
    public void NormalisationUsesImageNetStatisticsAndFlipMirrors()
    {
        using var bitmap = new SKBitmap(new SKImageInfo(2, 1, SKColorType.Rgba8888, SKAlphaType.Opaque));
        bitmap.SetPixel(0, 0, new SKColor(255, 0, 0));
        bitmap.SetPixel(1, 0, new SKColor(0, 255, 0));
        var chw = new float[6];
        ImageTransforms.ToNormalizedChw(bitmap, chw);
        Assert.Equal((1 - 0.485f) / 0.229f, chw[0], 5);
        Assert.Equal((0 - 0.485f) / 0.229f, chw[1], 5);
        ImageTransforms.ToNormalizedChw(bitmap, chw, flip: true);
        Assert.Equal((0 - 0.485f) / 0.229f, chw[0], 5);
        Assert.Equal((1 - 0.456f) / 0.224f, chw[2], 5);
    }

    [Fact]
    public void LoaderIsDeterministicAndIndependentOfPrefetchDepth()
    {
        var dir = TestImages.TempDir("det");
        TestImages.Write(dir, 20, size: 24);
        var samples = ImageFolder.Unlabelled(dir).Samples;
        var a = new PrefetchingBatchLoader(samples, SampleTransforms.Pretrain(16), 16, 4, shuffle: true, dropLast: true, seed: 3, prefetch: 1).Epoch(2).ToList();
        var b = new PrefetchingBatchLoader(samples, SampleTransforms.Pretrain(16), 16, 4, shuffle: true, dropLast: true, seed: 3, prefetch: 5).Epoch(2).ToList();
        var c = new PrefetchingBatchLoader(samples, SampleTransforms.Pretrain(16), 16, 4, shuffle: true, dropLast: true, seed: 3, prefetch: 5).Epoch(2, startBatch: 3).ToList();
        Assert.Equal(5, a.Count);
        for (int i = 0; i < a.Count; i++) Assert.Equal(a[i].Pixels, b[i].Pixels);
        Assert.Equal(a[3].Pixels, c[0].Pixels);
        var other = new PrefetchingBatchLoader(samples, SampleTransforms.Pretrain(16), 16, 4, shuffle: true, dropLast: true, seed: 3).Epoch(3).First();
        Assert.NotEqual(a[0].Pixels, other.Pixels);
    }

    [Fact]
    public void BatchTensorsHoldThePixelsAndLabels()
    {
        var pixels = Enumerable.Range(0, 2 * 3 * 2 * 2 + 5).Select(i => (float)i).ToArray(); // longer than Count images
        var batch = new ImageBatch(0, pixels, new[] { 4, 7, 9 }, Count: 2, Channels: 3, Size: 2);
        using var images = batch.ImagesTensor();
        Assert.Equal(new long[] { 2, 3, 2, 2 }, images.shape);
        Assert.Equal(pixels[..24], images.data<float>().ToArray());
        using var labels = batch.LabelsTensor();
        Assert.Equal(new long[] { 4, 7 }, labels.data<long>().ToArray());
    }

    [Fact]
    public void LabelledFoldersMapClassesInNameOrder()
    {
        var dir = TestImages.TempDir("labelled");
        TestImages.Write(dir, 9, size: 8, classes: 3);
        var folder = ImageFolder.Labelled(dir);
        Assert.Equal(new[] { "class0", "class1", "class2" }, folder.Classes);
        Assert.Equal(3, folder.Samples.Count(s => s.Label == 2));
        Directory.CreateDirectory(Path.Combine(dir, "class3"));
        var ex = Assert.Throws<InvalidDataException>(() => ImageFolder.Labelled(dir));
        Assert.Contains("class3", ex.Message);
    }

    [Fact]
    public void AtomicWriteFailureLeavesThePreviousFileIntact()
    {
        var dir = TestImages.TempDir("atomic");
        var path = Path.Combine(dir, "ckpt.bin");
        AtomicFile.Write(path, s => s.Write(new byte[] { 1, 2, 3 }));
        Assert.Throws<InvalidOperationException>(() => AtomicFile.Write(path, s => { s.Write(new byte[] { 9, 9 }); throw new InvalidOperationException("killed mid-write"); }));
        Assert.Equal(new byte[] { 1, 2, 3 }, File.ReadAllBytes(path));
        Assert.Single(Directory.GetFiles(dir));
    }
}
