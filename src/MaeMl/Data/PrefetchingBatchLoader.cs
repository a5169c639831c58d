using System.Collections.Concurrent;

namespace MaeMl.Data;

/// <summary>
/// Decodes and transforms batches on background threads, keeping up to <c>prefetch</c> batches in flight, and yields
/// them in order. The epoch's order and every sample's augmentation are pure functions of (seed, epoch, position), so
/// results do not depend on thread timing and a run resumed mid-epoch sees the same batches. An image that cannot be
/// read is logged once with its path and left out of its batch; it never stops the epoch.
/// </summary>
public sealed class PrefetchingBatchLoader : IBatchSource<ImageBatch>
{
    readonly IReadOnlyList<ImageSample> samples;
    readonly SampleTransform transform;
    readonly ConcurrentDictionary<string, string> unreadable = new();
    readonly Action<string> log;

    /// <summary>Images per batch (a last partial batch is smaller unless <see cref="DropLast"/>).</summary>
    public int BatchSize { get; }
    /// <summary>Side in pixels of the square images the transform writes.</summary>
    public int ImageSize { get; }
    /// <summary>Channels per image: 3 (RGB).</summary>
    public int Channels { get; } = 3;
    /// <summary>Each epoch visits the samples in a seeded permutation of (<see cref="Seed"/>, epoch) rather than in list order.</summary>
    public bool Shuffle { get; }
    /// <summary>The last partial batch of an epoch is left out (the official loaders' <c>drop_last=True</c> in training).</summary>
    public bool DropLast { get; }
    /// <summary>Seeds the epoch order and each sample's augmentation (with the epoch and the sample's position).</summary>
    public int Seed { get; }
    /// <summary>Batches decoded ahead, in flight at once (at least 1).</summary>
    public int Prefetch { get; }

    /// <summary>Files that failed to decode so far, with the reason.</summary>
    public IReadOnlyDictionary<string, string> Unreadable => unreadable;

    /// <summary>A loader of <paramref name="samples"/> through <paramref name="transform"/> to <paramref name="imageSize"/> pixels;
    /// <paramref name="log"/> receives the warning for each unreadable image (default: standard error). Throws
    /// <see cref="ArgumentException"/> for no samples, a non-positive batch size, or fewer samples than one batch with
    /// <paramref name="dropLast"/>.</summary>
    public PrefetchingBatchLoader(IReadOnlyList<ImageSample> samples, SampleTransform transform, int imageSize, int batchSize,
        bool shuffle, bool dropLast, int seed, int prefetch = 4, Action<string>? log = null)
    {
        if (samples.Count == 0) throw new ArgumentException("No images to load");
        if (batchSize <= 0) throw new ArgumentException($"batch size must be positive, got {batchSize}");
        if (dropLast && samples.Count < batchSize)
            throw new ArgumentException($"Only {samples.Count} images for a batch of {batchSize} with drop_last: lower the batch size");
        this.samples = samples; this.transform = transform; this.log = log ?? (m => Console.Error.WriteLine(m));
        ImageSize = imageSize; BatchSize = batchSize; Shuffle = shuffle; DropLast = dropLast; Seed = seed; Prefetch = Math.Max(1, prefetch);
    }

    /// <summary>Batches in one epoch: samples / batch size, rounded down with <see cref="DropLast"/>, up without (before unreadable images are left out).</summary>
    public int BatchesPerEpoch => DropLast ? samples.Count / BatchSize : (samples.Count + BatchSize - 1) / BatchSize;

    /// <summary>The sample order of an epoch (a seeded permutation when shuffling).</summary>
    public int[] Order(int epoch)
    {
        var order = Enumerable.Range(0, samples.Count).ToArray();
        if (Shuffle) new Random(Seeds.MixInt(Seed, epoch, 0x5EED)).Shuffle(order);
        return order;
    }

    /// <summary>Batches of <paramref name="epoch"/> from <paramref name="startBatch"/> on, decoded ahead in the background. Stopping the
    /// enumeration early waits for the decodes in flight, so none outlives it.</summary>
    public IEnumerable<ImageBatch> Epoch(int epoch, int startBatch = 0, CancellationToken cancel = default)
    {
        var order = Order(epoch);
        int total = BatchesPerEpoch;
        var inFlight = new Queue<Task<ImageBatch>>();
        int next = startBatch;
        try
        {
            while (next < total && inFlight.Count < Prefetch) { int b = next++; inFlight.Enqueue(Task.Run(() => Build(order, epoch, b), cancel)); }
            while (inFlight.Count > 0)
            {
                var batch = inFlight.Dequeue().GetAwaiter().GetResult();
                if (next < total) { int b = next++; inFlight.Enqueue(Task.Run(() => Build(order, epoch, b), cancel)); }
                if (batch.Count > 0) yield return batch;
            }
        }
        finally
        {
            // a consumer that stops early (time limit, cancellation, an exception, the last partial accumulation group) must not
            // leave decodes running: the caller may dispose the images (in-memory samples) or the process may go on to exit
            foreach (var task in inFlight)
                try { task.Wait(); }
                catch (AggregateException) { }   // cancelled or failed: its batch is not wanted
        }
    }

    /// <summary>Decodes and transforms one batch (on the calling thread).</summary>
    public ImageBatch Build(int[] order, int epoch, int batchIndex)
    {
        int start = batchIndex * BatchSize, end = Math.Min(start + BatchSize, order.Length);
        int per = Channels * ImageSize * ImageSize;
        var pixels = new float[(end - start) * per];
        var labels = new int[end - start];
        int count = 0;
        for (int k = start; k < end; k++)
        {
            var sample = samples[order[k]];
            if (unreadable.ContainsKey(sample.Path)) continue;
            try
            {
                using var decoded = sample.Image is null ? ImageDecoder.DecodeBitmap(sample.Path) : null;   // in-memory images are the owner's
                var rng = new Random(Seeds.MixInt(Seed, epoch, k));
                transform(sample.Image ?? decoded!, rng, pixels.AsSpan(count * per, per));
                labels[count++] = sample.Label;
            }
            catch (Exception e) when (e is ImageDecodeException or IOException or InvalidOperationException or ArgumentException)
            {
                if (unreadable.TryAdd(sample.Path, e.Message)) log($"warning: skipping unreadable image '{sample.Path}': {e.Message}");
            }
        }
        return new ImageBatch(batchIndex, pixels, labels, count, Channels, ImageSize);
    }
}
